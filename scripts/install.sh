#!/usr/bin/env bash
# Install Styx into ./.venv (once; later runs only refresh the editable install when needed).
# Usage: bash scripts/install.sh [extras]     extras default to "runtime" (Ray, for local clusters)
# Afterwards `styx` is .venv/bin/styx; it is also linked into ~/.local/bin when that folder is on
# PATH, and otherwise the last line printed says how to put it on PATH.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"
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
  echo "Installing Styx ($extras) into .venv: about a minute the first time (Ray is large)."
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null
  # pip's own progress: one line per package it collects, and its download bars on a terminal.
  set +e
  .venv/bin/python -m pip install -e ".[$extras]" | grep --line-buffered -E '^(Collecting|Successfully)'
  status="${PIPESTATUS[0]}"
  set -e
  [ "$status" -eq 0 ] || { echo "Installing Styx failed (pip's errors are above)." >&2; exit 1; }
  touch "$stamp"
fi

# `styx` in new shells: ~/.local/bin is on PATH on most distributions once it exists.
case ":$PATH:" in
  *":$HOME/.local/bin:"*)
    mkdir -p "$HOME/.local/bin"
    target="$(readlink "$HOME/.local/bin/styx" 2>/dev/null || true)"
    if [ ! -e "$HOME/.local/bin/styx" ] || [ "$target" = "$root/.venv/bin/styx" ]; then
      ln -sfn "$root/.venv/bin/styx" "$HOME/.local/bin/styx"
    elif [ "$target" != "$root/.venv/bin/styx" ]; then
      echo "Note: ~/.local/bin/styx is another Styx ($target); this one is $root/.venv/bin/styx."
    fi
    ;;
  *)
    if ! command -v styx >/dev/null 2>&1 || [ "$(command -v styx)" != "$root/.venv/bin/styx" ]; then
      echo "To run \`styx\` in new shells: echo 'export PATH=\"$root/.venv/bin:\$PATH\"' >> ~/.bashrc"
    fi
    ;;
esac
