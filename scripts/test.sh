#!/usr/bin/env bash
# Install, run the static checks, then the whole test suite (real sqlite MLflow
# stores, real Dagster instances in temporary folders). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
# Debian packages the tests drive, installed when missing (as root with apt-get);
# otherwise the tests that need them fail and say so.
apt_install_missing() {  # command...: package...
  local missing=() package
  for package in "$@"; do command -v "$package" >/dev/null || missing+=("$package"); done
  [ ${#missing[@]} = 0 ] && return
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq >/dev/null && apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "missing: ${missing[*]} (Debian: apt-get install ${missing[*]})" >&2
  fi
}
# Docker Compose validates the compose file (no engine needed); the browser test drives
# Debian's chromium (Playwright never downloads a browser); the scale-out tests start a
# RabbitMQ broker on 127.0.0.1 (never as a service). Fetched while the venv installs.
apt_install_missing docker-compose chromium rabbitmq-server &
APT=$!
bash scripts/install.sh
bash scripts/check.sh
wait "$APT" || echo "installing Debian packages failed: the tests that need them will say so" >&2
source scripts/env.sh
# Three workers on this 2-core machine (most tests wait on the processes they start:
# from a clean clone, 15.7 min of tests; 18.5 with four, 24.9 with two), each test module on
# one worker (module fixtures: a topology, a registry), the longest modules first
# (conftest's LONGEST_MODULES; xdist's own reordering, by test count, started the
# one-test 7-minute benchmark module last). --durations: where the time went, in
# every log. The reliability report (IRIS_RELIABILITY_REPORT) needs one process:
# IRIS_TEST_WORKERS=0.
exec .venv/bin/pytest -n "${IRIS_TEST_WORKERS:-3}" --dist loadscope --no-loadscope-reorder --durations=25 "$@"
