#!/usr/bin/env bash
# Static checks, with the versions pinned in uv.lock: lint, formatting, types.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
