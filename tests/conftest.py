"""Shared test setup: run from the repository root, deterministic, quiet, small."""
from __future__ import annotations

import os

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

    The app loads its default models from the committed release (``release/``, each file
    checked against its manifest: seconds, nothing built); its build cache is a fresh
    temporary folder, which stays empty. The app's log goes to
    ``test-artifacts/app-server.log``.
    """
    from tests.webapp.app_server import ARTIFACTS, start_app, stop_app

    cache = tmp_path_factory.mktemp("app-cache")
    server = start_app(cache, tmp_path_factory.mktemp("gradio-tmp"), ARTIFACTS / "app-server.log")
    yield server
    stop_app(server)
