"""The rexbert command line, job submission (Ray Jobs, Dataproc, EMR), the local end-to-end runner, deployable configs."""
