"""The classify + filter stage: the fastText e-commerce classifier, quality filters, categories."""
