#!/usr/bin/env bash
# Set up (venv + pinned requirements) and run the main job: classify the sample scans
# with the pretrained VGG16. Extra arguments replace the default file list.
set -euo pipefail
cd "$(dirname "$0")"
scripts/setup.sh
export GRADIO_ANALYTICS_ENABLED=False
if [[ $# -gt 0 ]]; then
  exec .venv/bin/python -m hscc_core predict --model vgg16-brain-mri "$@"
fi
exec .venv/bin/python -m hscc_core predict --model vgg16-brain-mri samples/*.jpg samples/dicom/* samples/nifti/*
