"""Engine-agnostic document logic: records, extraction, classification, filters, MinHash. No Spark, no Ray."""
