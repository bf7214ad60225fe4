"""The experiment database: every run remembered (config, task meta-features, metrics), for warm-started tuning."""

from metadl.experiments.database import ExperimentDB, ExperimentDBError, RunRecord, default_path

__all__ = ["ExperimentDB", "ExperimentDBError", "RunRecord", "default_path"]
