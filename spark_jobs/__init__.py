"""PySpark drivers that apply corpus/ at scale; each module with a __main__ is a spark-submit entry point."""
