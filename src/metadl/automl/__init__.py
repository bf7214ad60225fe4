"""Algorithm selection: recommend a learning pipeline for a new dataset from its meta-features."""
