"""Submitting work to clusters: Ray Jobs, Dataproc and EMR. Each builds the real request; `--dry-run` prints it."""
