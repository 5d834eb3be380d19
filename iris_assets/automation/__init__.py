"""Automation: the job, the executor runs choose, the retraining schedule and the new-data sensor."""
