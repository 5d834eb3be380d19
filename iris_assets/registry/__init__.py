"""The registry: each model that passed the quality gate becomes a version; the best is `champion`."""
