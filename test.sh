#!/usr/bin/env bash
# Set up (venv + pinned dev requirements) and run the whole test suite.
# Extra arguments go to pytest, e.g. ./test.sh -k vgg16
set -euo pipefail
cd "$(dirname "$0")"
scripts/setup.sh --dev
export GRADIO_ANALYTICS_ENABLED=False
exec .venv/bin/python -m pytest "$@"
