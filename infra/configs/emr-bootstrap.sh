#!/bin/bash
# EMR bootstrap action: the Python libraries the corpus Spark jobs import on every node (pins as pyproject.toml).
set -euo pipefail
sudo python3.11 -m pip install --upgrade pip
sudo python3.11 -m pip install trafilatura==2.3.1 extruct==0.18.0 fasttext-numpy2-wheel==0.9.2 py3langid==0.4.0 \
  datatrove==0.10.1 xxhash==3.8.2 spacy==3.8.18 warcio==1.8.1 fastwarc==2.0.0 pyarrow==26.0.1 numpy==2.4.6 \
  pandas==2.3.3 pydantic==2.14.3 pyyaml==6.0.3
