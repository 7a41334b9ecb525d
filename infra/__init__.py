"""The rexbert command line, job submission (Ray Jobs, Dataproc, EMR), the demo runner, deployable configs."""
