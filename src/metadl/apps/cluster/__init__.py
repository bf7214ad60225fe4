"""Meta-clustering: partition unlabelled examples of new classes (``metadl cluster``, the Lake protocol)."""
