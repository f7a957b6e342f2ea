"""Shared test setup: run from the repository root, deterministic, quiet, small."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

SAMPLES = ROOT / "samples"
#: The six real sample JPEGs and their true classes (from the file names).
SAMPLE_LABELS = {
    "Te-gl_0010.jpg": "glioma",
    "Te-gl_0011.jpg": "glioma",
    "Te-me_0016.jpg": "meningioma",
    "Te-me_0017.jpg": "meningioma",
    "Te-no_0021.jpg": "notumor",
    "Te-pi_0014.jpg": "pituitary",
}


@pytest.fixture(scope="session")
def vgg16():
    """The pretrained VGG16 (built once per test session: ~0.5 s and 60 MB)."""
    from models import build_model

    return build_model("vgg16-brain-mri")
