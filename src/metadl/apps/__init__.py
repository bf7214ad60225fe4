"""Applications: thin compositions of tasks, data, models and learners for one kind of data."""
