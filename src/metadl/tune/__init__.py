"""Tuning: Optuna studies over metadl configs, warm-started from the experiment database."""
