#!/usr/bin/env bash
# Install Styx into ./.venv (once; later runs only refresh the editable install when needed).
# Usage: bash scripts/install.sh [extras]     extras default to "runtime" (Ray, for local clusters)
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-runtime}"
py="${STYX_PYTHON:-$(command -v python3.11 || command -v python3)}"
"$py" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' || {
  echo "Styx needs Python 3.11 or newer; found $("$py" --version 2>&1)." >&2; exit 1; }
if [ ! -x .venv/bin/python ]; then
  echo "Creating .venv with $("$py" --version 2>&1)..."
  "$py" -m venv .venv
fi
stamp=".venv/.styx-installed-$extras"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "Installing Styx ($extras) into .venv..."
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null
  .venv/bin/python -m pip install -q -e ".[$extras]"
  touch "$stamp"
fi
