#!/usr/bin/env bash
# Install, run the static checks, then the whole test suite (real sqlite MLflow
# stores, real Dagster instances in temporary folders). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
bash scripts/check.sh
# Debian packages the tests drive, installed when missing (as root with apt-get);
# otherwise the tests that need them fail and say so.
apt_install_missing() {  # command package
  command -v "$1" >/dev/null && return
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq >/dev/null && apt-get install -y -qq "$2" >/dev/null
  else
    echo "$1 is missing: install it (Debian: apt-get install $2)" >&2
  fi
}
# The compose file is validated by Docker Compose itself (no engine needed).
apt_install_missing docker-compose docker-compose
# The browser test drives Debian's chromium: Playwright never downloads a browser.
apt_install_missing chromium chromium
# The scale-out tests' Celery broker (started by the tests, on 127.0.0.1, never as a service).
apt_install_missing rabbitmq-server rabbitmq-server
source scripts/env.sh
# Three workers on this 2-core machine (most tests wait on the processes they start:
# from a clean clone, 21.9 min of tests against 24.9 with two), each test module on
# one worker (module fixtures: a topology, a registry), the longest modules first
# (conftest's LONGEST_MODULES; xdist's own reordering, by test count, started the
# one-test 7-minute benchmark module last). --durations: where the time went, in
# every log. The reliability report (IRIS_RELIABILITY_REPORT) needs one process:
# IRIS_TEST_WORKERS=0.
exec .venv/bin/pytest -n "${IRIS_TEST_WORKERS:-3}" --dist loadscope --no-loadscope-reorder --durations=25 "$@"
