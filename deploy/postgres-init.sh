#!/bin/sh
# First start of the PostgreSQL volume: a second database, for MLflow (the image
# creates $POSTGRES_DB, used by Dagster).
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -c "CREATE DATABASE ${MLFLOW_POSTGRES_DB}"
