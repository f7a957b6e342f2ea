#!/usr/bin/env bash
# Create .venv and install the pinned requirements (idempotent: skips pip when the
# requirement files have not changed since the last successful install).
# Usage: scripts/setup.sh [--dev]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
reqs=(requirements.txt)
[[ "${1:-}" == "--dev" ]] && reqs+=(requirements-dev.txt)
if [[ ! -x .venv/bin/python ]]; then
  echo "setup: creating .venv with $($PY --version)" >&2
  "$PY" -m venv .venv
fi
stamp=".venv/.installed-$(cat "${reqs[@]}" pyproject.toml | sha256sum | cut -c1-16)"
if [[ ! -f "$stamp" ]]; then
  echo "setup: installing ${reqs[*]} (first run: a few minutes)" >&2
  .venv/bin/python -m pip install --quiet --upgrade pip
  for r in "${reqs[@]}"; do .venv/bin/python -m pip install --quiet -r "$r"; done
  # The packages of this checkout, editable and without dependencies (pinned above):
  # gives the hscc-mri command and lets tests and scripts import them from anywhere.
  iso=()
  .venv/bin/python -c "import setuptools" 2>/dev/null && iso=(--no-build-isolation)
  .venv/bin/python -m pip install --quiet --no-deps "${iso[@]}" -e .
  touch "$stamp"
fi
