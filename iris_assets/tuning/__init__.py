"""Tuning: hyperparameter sweeps as backfills (trials are partitions), one MLflow parent run per sweep."""
