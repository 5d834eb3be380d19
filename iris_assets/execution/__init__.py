"""Execution: the executor runs choose (in one process, a process per step, or Celery workers)."""
