#!/usr/bin/env bash
# Set up (venv + pinned requirements) and start the clinician app on http://127.0.0.1:7860.
# The first start builds the compressed model once (a few minutes; cached in artifacts/).
# Extra arguments go to the app, e.g. ./run.sh --port 8080 --share   (see ./run.sh --help).
# To classify files on the command line instead:
#   .venv/bin/hscc-mri predict --model vgg16-brain-mri samples/*.jpg samples/dicom/* samples/nifti/*
set -euo pipefail
cd "$(dirname "$0")"
scripts/setup.sh
export GRADIO_ANALYTICS_ENABLED=False
exec .venv/bin/python app.py "$@"
