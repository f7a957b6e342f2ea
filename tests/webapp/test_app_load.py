"""The running app through its API (``gradio_client``): several users at once, restarts.

Loopback only, a bounded number of requests and a bounded time.
"""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.webapp.app_server import ARTIFACTS, start_app, startup_seconds, stop_app
from tests.paths import SAMPLE_LABELS, SAMPLES

# A real app server started from the release (no build, no quantisation).
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


def test_restart_loads_the_release_and_cleans_temporary_files(app_server, tmp_path):
    """Both starts load the default models from the release (nothing is compressed or
    quantised); uploads do not outlive the server."""
    from hscc_mri.release import load_release

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
    assert not [p for p in temp.rglob("*") if p.is_file()], "Gradio's temporary files outlived the server"
    assert "patient_named_upload" not in server.log()  # file names are not logged
    release = load_release()
    for start in (app_server, server):
        log = start.log()
        assert "loaded from the release" in log and release.name(release.key_for()) in log, log[-2000:]
        assert not startup_seconds(log) and "quantis" not in log and "building" not in log, log[-2000:]
    assert not any(app_server.cache_dir.iterdir())  # nothing built or kept
    print(f"\napp start from the release: first {app_server.startup_s:.0f} s, restart {server.startup_s:.0f} s")
