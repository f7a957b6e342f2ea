"""The running app through its API (``gradio_client``): several users at once, restarts.

Loopback only, a bounded number of requests and a bounded time.
"""
from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from hscc_mri.cache import cache_path

from tests.webapp.app_server import ARTIFACTS, start_app, startup_seconds, stop_app
from tests.paths import SAMPLE_LABELS, SAMPLES

# A real app server; the session's first app start compresses VGG16 once.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1800)]

N_CLIENTS = 6
#: Wall-clock bound for all concurrent requests: each takes ~2-4 s of model time on 2 cores
#: (7 timed runs of both models), and the model timing is serialised.
BOUND_S = 240


def _predict(url: str, path: Path) -> tuple[str, dict, float]:
    from gradio_client import Client, handle_file

    t0 = time.perf_counter()
    client = Client(url, verbose=False, download_files=False)
    _slider, status, _image, label_c, label_o, html = client.predict([handle_file(str(path))], api_name="/predict")
    return status, {"compressed": label_c["label"], "original": label_o["label"], "html": html}, \
        time.perf_counter() - t0


def test_concurrent_requests_all_succeed(app_server):
    from models import DISPLAY_NAMES

    files = list(SAMPLE_LABELS)[:N_CLIENTS]
    t0 = time.perf_counter()
    with ThreadPoolExecutor(N_CLIENTS) as pool:
        results = list(pool.map(lambda f: _predict(app_server.url, SAMPLES / f), files))
    wall = time.perf_counter() - t0
    assert wall < BOUND_S, f"{N_CLIENTS} concurrent requests took {wall:.0f} s"
    for f, (status, res, _) in zip(files, results):
        assert status.startswith("JPEG image"), status
        assert res["compressed"] == res["original"] == DISPLAY_NAMES[SAMPLE_LABELS[f]], (f, res)
        assert 'id="latency-compressed"' in res["html"] and 'id="latency-original"' in res["html"]


def test_restart_loads_cached_model_and_cleans_temporary_files(app_server, tmp_path):
    """A second start with the same cache folder loads the compressed model instead of
    building it; uploads do not outlive the server."""
    temp = tmp_path / "gradio-tmp"
    server = start_app(app_server.cache_dir, temp, ARTIFACTS / "app-server-restart.log", timeout=300)
    try:
        upload = tmp_path / "patient_named_upload.jpg"
        upload.write_bytes((SAMPLES / "Te-me_0017.jpg").read_bytes())
        status, res, _ = _predict(server.url, upload)
        assert res["compressed"] == "meningioma", (status, res)
        assert list(temp.rglob(upload.name)), "the upload should be in Gradio's temp folder while serving"
    finally:
        assert stop_app(server) == 0, server.log()[-2000:]
    times = startup_seconds(server.log())
    assert "cache" in times and "build" not in times, server.log()[-2000:]
    assert not [p for p in temp.rglob("*") if p.is_file()], "Gradio's temporary files outlived the server"
    assert "patient_named_upload" not in server.log()  # file names are not logged
    first = startup_seconds(app_server.log())
    if not os.environ.get("HSCC_APP_CACHE"):
        assert "build" in first, app_server.log()[-2000:]  # a plain run exercised the cold start
    print(f"\napp start: first {app_server.startup_s:.0f} s {first}, restart {server.startup_s:.0f} s {times}")
    cached = cache_path("vgg16-brain-mri", "hscc", 6.0, app_server.cache_dir)  # the app's defaults
    assert cached.is_file() and cached.with_suffix(".json").is_file() and cached.name in server.log()
