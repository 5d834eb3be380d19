#!/usr/bin/env bash
# Install the project's pinned environment into .venv (needs only python3 >= 3.11).
#
# uv (pinned, bootstrapped with pip into .iris_state/tools) installs exactly what
# uv.lock says, in seconds; it never downloads a Python of its own.
set -euo pipefail
cd "$(dirname "$0")/.."

UV_VERSION=0.13.9
PYTHON=${PYTHON:-python3}
TOOLS=.iris_state/tools
UV="$TOOLS/bin/uv"

"$PYTHON" -c 'import sys; assert sys.version_info >= (3, 11), f"Python 3.11+ needed, this is {sys.version}"'
if ! "$UV" --version 2>/dev/null | grep -q "uv $UV_VERSION"; then
  "$PYTHON" -m venv "$TOOLS"
  "$TOOLS/bin/python" -m pip install --quiet --disable-pip-version-check "uv==$UV_VERSION"
fi
export UV_PYTHON_DOWNLOADS=never
"$UV" sync --frozen --python "$(command -v "$PYTHON")" --quiet
