#!/usr/bin/env bash
# Set up (venv + pinned requirements) and start the clinician app on http://127.0.0.1:7860.
# The models come from release/ (checked against its manifest): the page is up in under a minute.
# Extra arguments go to the app, e.g. ./run.sh --port 8080 --share   (see ./run.sh --help).
# To classify files on the command line instead:
#   .venv/bin/hscc-mri predict samples/*.jpg samples/dicom/* samples/nifti/*   (the app's compressed model)
set -euo pipefail
cd "$(dirname "$0")"
scripts/setup.sh
export GRADIO_ANALYTICS_ENABLED=False
exec .venv/bin/python app.py "$@"
