"""The contracts every layer shares: the run config schema, the filesystem layer, the stage manifest.

A leaf package (pydantic, yaml, pyarrow only): corpus/, training/, spark_jobs/ and ray_jobs/ import it, and it is
shipped to Spark executors and Ray workers with them. The rest of infra/ calls the jobs, never the reverse.
"""
