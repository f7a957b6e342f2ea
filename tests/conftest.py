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


@pytest.fixture(scope="session")
def app_server(tmp_path_factory):
    """``python app.py`` serving on a free loopback port, started once per test session.

    The compressed model is cached in ``$HSCC_APP_CACHE`` if set (fast local reruns),
    otherwise in a fresh temporary folder, so that a plain run (CI) exercises the real
    cold start: the one-time HSCC compression of VGG16 (minutes on 2 CPU cores). The
    app's log goes to ``test-artifacts/app-server.log``.
    """
    from .app_server import ARTIFACTS, start_app, stop_app

    cache = Path(os.environ.get("HSCC_APP_CACHE") or tmp_path_factory.mktemp("app-cache"))
    server = start_app(cache, tmp_path_factory.mktemp("gradio-tmp"), ARTIFACTS / "app-server.log")
    yield server
    stop_app(server)
