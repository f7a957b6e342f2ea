"""End to end in a real browser: ``python app.py`` driven by headless Chromium (Playwright).

Needs the Debian ``chromium`` package at /usr/bin/chromium (``.ci/run`` installs it);
Playwright's own browser download is not used. A screenshot of a good result is saved
as ``test-artifacts/app.png``; with ``HSCC_UPDATE_SCREENSHOT=1`` it also replaces the
README's ``docs/app_screenshot.png``.
"""
from __future__ import annotations

import os
import re
import shutil
import urllib.parse
from pathlib import Path

import pytest

from hscc_mri.inference import predict_file
from models import DISPLAY_NAMES
from preprocessing import ScanError, load_scan

from tests.webapp.app_server import ARTIFACTS
from tests.paths import ROOT, SAMPLES

# A real app server and browser; the session's first app start compresses VGG16 once.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1800)]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]
#: The data set's file-name prefixes name the true class.
PREFIX_CLASS = {"Te-gl": "glioma", "Te-me": "meningioma", "Te-no": "notumor", "Te-pi": "pituitary"}
#: A JPEG, a single-frame DICOM, a multi-frame DICOM and a NIfTI volume.
UPLOADS = ["Te-gl_0011.jpg", "dicom/Te-me_0016.dcm", "dicom/Te-gl_0010_multiframe.dcm", "nifti/Te-pi_0014.nii.gz"]
TIMEOUT_MS = 120_000


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), "Chromium is missing: apt-get install chromium (.ci/run does)"
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser, app_server):
    """A fresh page on the app; records every request that leaves the loopback host."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = context.new_page()
    pg.external_requests = []
    pg.on("request", lambda r: pg.external_requests.append(r.url)
          if urllib.parse.urlparse(r.url).hostname not in ("127.0.0.1", "localhost", None) else None)
    pg.goto(app_server.url)
    pg.wait_for_selector("#scan-file input[type=file]", state="attached", timeout=TIMEOUT_MS)
    yield pg
    context.close()


@pytest.fixture(scope="module")
def expected(vgg16):
    """What ``hscc-mri predict --model vgg16-brain-mri`` says for each upload."""
    out = {}
    for rel in UPLOADS + ["Te-no_0021.jpg"]:
        res = predict_file(vgg16, SAMPLES / rel, repeats=1)
        assert res["label"] == PREFIX_CLASS[Path(rel).name[:5]], res  # the sample's true class
        out[rel] = res["label"]
    return out


def _upload(page, path: Path) -> None:
    clear = page.locator("#scan-file button[aria-label=Clear]")
    if clear.count():
        clear.first.click()
        page.wait_for_function("document.querySelector('#status').innerText.includes('Upload a scan')")
    page.set_input_files("#scan-file input[type=file]", str(path))


def _wait_for_result(page, needle: str) -> None:
    """Wait until the status mentions ``needle`` and both predictions are shown."""
    page.wait_for_function(
        "([s]) => document.querySelector('#status').innerText.includes(s) && "
        "document.querySelector('#pred-compressed') && document.querySelector('#pred-original')",
        arg=[needle], timeout=TIMEOUT_MS)


def _shown(page) -> dict[str, str]:
    return {k: page.inner_text(f"#{k}") for k in
            ("pred-compressed", "pred-original", "latency-compressed", "latency-original", "speedup", "agreement",
             "status")}


def test_page_states_purpose_and_fetches_nothing_from_outside(page):
    # The examples table renders after the upload box; on a loaded machine it can lag the
    # fixture's wait (CI run of 2026-11-30 read the page before it appeared).
    page.wait_for_function("document.body.innerText.includes('Te-pi_0014.nii.gz')", timeout=TIMEOUT_MS)
    text = page.inner_text("body")
    assert "not a diagnosis" in text and "Research decision support" in text
    from hscc_mri.release import load_release

    release = load_release()  # the page names the release model and states its measured fidelity
    key = release.key_for()
    fid, test = release.fidelity(key), release.manifest["test_set"]
    assert release.name(key) in text and f"measured on {test['n']} labelled real scans ({test['name']}" in text
    assert f"agrees with the uncompressed model on {100 * fid['agreement']:.1f}%" in text
    for name in ("Te-gl_0010.jpg", "Te-me_0016.dcm", "Te-gl_0010_multiframe.dcm", "Te-pi_0014.nii.gz"):
        assert name in text  # the example scans are on the page
    page.wait_for_timeout(2000)  # late requests (fonts, analytics) would come now; the page keeps a stream open
    assert page.external_requests == []  # no fonts, CDNs or analytics: works offline


@pytest.mark.parametrize("rel", UPLOADS)
def test_upload_shows_both_predictions_and_latencies(page, rel, expected):
    path = SAMPLES / rel
    scan = load_scan(path)
    _upload(page, path)
    _wait_for_result(page, "volume" if scan.is_volume else "image")
    shown = _shown(page)
    label = DISPLAY_NAMES[expected[rel]]
    assert shown["pred-compressed"].startswith(label + " (p = "), shown
    assert shown["pred-original"].startswith(label + " (p = "), shown
    assert "Models agree" in shown["agreement"], shown
    for key in ("latency-compressed", "latency-original"):
        assert re.fullmatch(r"\d+\.\d ms", shown[key].strip()), shown
    assert re.search(r"Speed-up on this scan: \d+\.\dx", shown["speedup"]), shown
    # Both gr.Label panels headline the same class; the model's input image is shown.
    assert page.inner_text("#label-compressed").count(label) >= 1
    assert page.inner_text("#label-original").count(label) >= 1
    assert page.locator("#model-input img").count() == 1
    assert page.external_requests == []
    slider = page.locator("#slice")
    assert slider.is_visible() == scan.is_volume
    if scan.is_volume:
        assert f"slice {scan.slice_index} of 0–{scan.num_slices - 1}" in shown["status"]
        assert page.locator("#slice input[type=number]").input_value() == str(scan.slice_index)
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"app-{Path(rel).name}.png"), full_page=True)
        if rel == "dicom/Te-gl_0010_multiframe.dcm":
            page.screenshot(path=str(ARTIFACTS / "app.png"), full_page=True)
            if os.environ.get("HSCC_UPDATE_SCREENSHOT") == "1":
                shutil.copyfile(ARTIFACTS / "app.png", ROOT / "docs" / "app_screenshot.png")


def test_example_click_and_slice_slider_rerun_prediction(page, expected):
    rel = "nifti/Te-pi_0014.nii.gz"
    scan = load_scan(SAMPLES / rel)
    page.get_by_text(Path(rel).name, exact=True).click()
    _wait_for_result(page, f"slice {scan.slice_index} of")
    other = (scan.slice_index + 1) % scan.num_slices
    box = page.locator("#slice input[type=number]")
    box.fill(str(other))
    box.press("Enter")
    box.blur()
    _wait_for_result(page, f"slice {other} of")
    shown = _shown(page)
    assert re.fullmatch(r"\d+\.\d ms", shown["latency-compressed"].strip()), shown
    assert shown["pred-original"].split(" (p = ")[0] in {DISPLAY_NAMES[c] for c in PREFIX_CLASS.values()}


def test_corrupt_file_shows_its_error_and_the_app_keeps_serving(page, tmp_path, expected):
    bad = tmp_path / "corrupt_scan.dcm"
    bad.write_bytes(b"\x00" * 128 + b"DICM" + os.urandom(200))  # DICOM preamble, then garbage
    with pytest.raises(ScanError) as err:
        load_scan(bad)
    _upload(page, bad)
    page.wait_for_function("document.querySelector('#status').innerText.includes('cannot be used')",
                           timeout=TIMEOUT_MS)
    status = page.inner_text("#status")
    assert str(err.value) in status
    assert page.locator("#pred-compressed").count() == 0  # no stale result next to the bad file
    # The next upload works.
    _upload(page, SAMPLES / "Te-no_0021.jpg")
    _wait_for_result(page, "JPEG image")
    assert page.inner_text("#pred-compressed").startswith(DISPLAY_NAMES[expected["Te-no_0021.jpg"]])


def test_zipped_dicom_series_upload_walks_the_sorted_slices(page, tmp_path, expected):
    """Issue 13: a shuffled, zipped DICOM series of the sample NIfTI volume reads as one
    7-slice series with the NIfTI twin's label; the slider walks its slices."""
    import zipfile

    from tests.preprocessing import test_series as series

    files = series.write_series(tmp_path / "series", load_scan(SAMPLES / "nifti" / "Te-pi_0014.nii.gz").data)
    archive = tmp_path / "Te-pi_0014_series.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for p in files:
            zf.write(p, p.name)
    _upload(page, archive)
    _wait_for_result(page, 'DICOM series "T1 AX" volume, 7 slices')
    assert page.inner_text("#pred-original").startswith(DISPLAY_NAMES[expected["nifti/Te-pi_0014.nii.gz"]])
    shown = page.inner_text("#status")
    other = 0 if "slice 0 of" not in shown else 1
    box = page.locator("#slice input[type=number]")
    box.fill(str(other))
    box.press("Enter")
    box.blur()
    _wait_for_result(page, f"slice {other} of")
