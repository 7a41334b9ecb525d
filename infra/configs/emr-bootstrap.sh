#!/bin/bash
# EMR bootstrap action: installs the corpus Spark jobs' Python libraries on every node, for the Python that
# spark-defaults names (spark.pyspark.python in emr-cluster.json).
#
# Argument 1: the s3:// URI of the pip requirements file that `rexbert submit emr --create-cluster` uploads next
# to this script. Its pins come from pyproject.toml (infra.cloud.packaging.spark_executor_requirements, the one
# list every cluster path uses), so no version is written here.
set -euo pipefail
requirements_uri="${1:?usage: emr-bootstrap.sh s3://BUCKET/PREFIX/rexbert-requirements.txt}"
sudo dnf install -y python3.11 python3.11-pip
aws s3 cp "$requirements_uri" /tmp/rexbert-requirements.txt
sudo python3.11 -m pip install --upgrade pip
sudo python3.11 -m pip install -r /tmp/rexbert-requirements.txt
