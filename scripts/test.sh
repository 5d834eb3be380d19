#!/usr/bin/env bash
# Install, then run the whole test suite (real sqlite MLflow stores, real Dagster
# instances in temporary folders). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
# The compose file is validated by Docker Compose itself (no engine needed).
if ! command -v docker-compose >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq >/dev/null && apt-get install -y -qq docker-compose >/dev/null
  else
    echo "docker-compose is missing: install it (Debian: apt-get install docker-compose)" >&2
  fi
fi
source scripts/env.sh
exec .venv/bin/pytest "$@"
