"""Shared test setup: run from the repository root, deterministic, quiet, small."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")


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
    from tests.webapp.app_server import ARTIFACTS, start_app, stop_app

    cache = Path(os.environ.get("HSCC_APP_CACHE") or tmp_path_factory.mktemp("app-cache"))
    server = start_app(cache, tmp_path_factory.mktemp("gradio-tmp"), ARTIFACTS / "app-server.log")
    yield server
    stop_app(server)
