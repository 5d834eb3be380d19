# The project's image: the code server, the webserver, the daemon and the MLflow
# server all run from it, with the locked dependency set (uv.lock) and nothing else.
FROM python:3.11-slim

# Bytecode compiled at install (UV_COMPILE_BYTECODE): with PYTHONDONTWRITEBYTECODE and a
# read-only venv, every process (code server, run worker, step) would otherwise compile
# every module it imports from source, seconds each.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    UV_PYTHON_DOWNLOADS=never \
    UV_COMPILE_BYTECODE=1 \
    UV_PROJECT_ENVIRONMENT=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    DAGSTER_HOME=/opt/dagster/home \
    IRIS_STATE_DIR=/opt/dagster/state \
    MLFLOW_DISABLE_TELEMETRY=true \
    DAGSTER_DISABLE_TELEMETRY=yes \
    ORT_DISABLE_TELEMETRY=1 \
    DO_NOT_TRACK=1

RUN pip install --no-cache-dir uv==0.13.9 \
 && useradd --create-home --uid 1000 iris \
 && mkdir -p /opt/dagster/home /opt/dagster/state/landing /mlartifacts \
 && chown -R iris /opt/dagster /mlartifacts

WORKDIR /opt/iris
# Dependencies first (a layer that changes only with uv.lock), then the code.
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project
COPY iris_assets ./iris_assets
COPY deploy ./deploy
RUN uv sync --frozen --no-dev && cp deploy/dagster.yaml /opt/dagster/home/dagster.yaml

USER iris
