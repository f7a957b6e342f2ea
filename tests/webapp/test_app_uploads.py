"""Several uploads: each single image classified on its own; only DICOM files form a series
(issue 26, defect 7). In a real browser against a real server with small models."""
from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.webapp.app_server import ARTIFACTS, ROOT, _serving, free_port

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]
SAMPLES = ROOT / "samples"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]


@pytest.fixture(scope="module")
def small_server(tmp_path_factory):
    import os

    port = free_port()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONUNBUFFERED": "1",
           "GRADIO_TEMP_DIR": str(tmp_path_factory.mktemp("gradio"))}
    with open(ARTIFACTS / "small-app.log", "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "tests.webapp.small_app", "--port", str(port)], cwd=ROOT,
                                env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    t0 = time.perf_counter()
    while not _serving(url):
        assert proc.poll() is None and time.perf_counter() - t0 < 240, (ARTIFACTS / "small-app.log").read_text()
        time.sleep(0.5)
    yield url
    proc.terminate()
    proc.wait(30)


def test_a_second_image_dropped_after_the_first_is_classified_on_its_own(small_server, tmp_path):
    from playwright.sync_api import sync_playwright

    first, second = tmp_path / "first.jpg", tmp_path / "second.jpg"
    shutil.copy(SAMPLES / "Te-gl_0010.jpg", first)
    shutil.copy(SAMPLES / "Te-no_0021.jpg", second)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.goto(small_server)
        box = "#scan-file input[type=file]"
        page.wait_for_selector(box, state="attached", timeout=60_000)
        page.set_input_files(box, str(first))
        page.wait_for_function("document.querySelector('#status').innerText.includes('JPEG image')", timeout=60_000)
        page.set_input_files(box, str(second))  # dropped on the box after the first: the list grows
        page.wait_for_selector("#uploads li >> nth=1", timeout=60_000)
        status = page.inner_text("#status")
        browser.close()
    assert "cannot be used" not in status and "no DICOM" not in status, status
    assert "first.jpg: compressed" in status and "second.jpg: compressed" in status, status
    assert "showing second.jpg" in status, status
