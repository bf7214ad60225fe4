"""metadl: deep meta-learning with vectorised few-shot learners."""

__version__ = "0.1.0"
