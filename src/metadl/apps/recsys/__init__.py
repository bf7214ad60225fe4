"""User cold-start recommendation: users as tasks (MeLU-style meta-learning, baselines, metrics)."""
