#!/usr/bin/env bash
# Install, then run the whole test suite (real sqlite MLflow stores, real Dagster
# instances in temporary folders). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
source scripts/env.sh
exec .venv/bin/pytest "$@"
