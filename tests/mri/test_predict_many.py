"""``predict`` over many files: read ahead and batched, yet the same answers as one scan
at a time, in input order, each line out as soon as it is known.

Real scans only: the sample JPEGs and their DICOM/NIfTI twins, the mini Testing set, and
a damaged JPEG written here (the first half of a real one)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from hscc_mri.batch_predict import _Batcher, predict_files
from hscc_mri.inference import predict_file, read_scan_input
from hscc_mri.runtimes import compile_model
from tests.paths import MINI_TESTING, ROOT, SAMPLE_LABELS, SAMPLES

DERIVED = ["dicom/Te-me_0016.dcm", "nifti/Te-pi_0014.nii.gz"]


def _files(tmp_path: Path) -> tuple[list[str], str]:
    """Sample JPEGs, two derived volumes and four mini-set scans, a damaged JPEG in the middle."""
    broken = tmp_path / "broken.jpg"
    jpeg = (SAMPLES / "Te-gl_0010.jpg").read_bytes()
    broken.write_bytes(jpeg[: len(jpeg) // 2])
    good = [str(SAMPLES / f) for f in SAMPLE_LABELS] + [str(SAMPLES / f) for f in DERIVED]
    good += [str(p) for p in sorted(MINI_TESTING.glob("*/*.jpg"))[::16]]
    return good[:5] + [str(broken)] + good[5:], str(broken)


def _assert_same(batched: dict, single: dict, tol: float) -> None:
    assert batched["file"] == single["file"]
    assert batched["label"] == single["label"], (batched, single)
    assert batched.keys() - {"latency_ms", "model_ms"} == single.keys() - {"latency_ms", "model_ms"}
    assert max(abs(batched["probabilities"][c] - single["probabilities"][c]) for c in single["probabilities"]) < tol
    for key in ("slice", "slices", "series", "notes", "runtime", "precision"):
        assert batched.get(key) == single.get(key)


def test_batched_results_equal_one_at_a_time_in_order_with_the_bad_file_in_place(vgg16, tmp_path):
    files, broken = _files(tmp_path)
    batched = list(predict_files(vgg16, files, batch_size=16, readers=1))
    assert [r["file"] for r in batched] == files
    bad = batched[files.index(broken)]
    assert set(bad) == {"file", "error"} and "broken.jpg" in bad["error"]
    for res, f in zip(batched, files):
        if f == broken:
            continue
        assert "latency_ms" not in res  # not timed: no latency to report
        assert res["model_ms"] > 0  # the scan's share of its batch call
        _assert_same(res, predict_file(vgg16, f, repeats=1), tol=1e-5)
    for res in batched:
        name = Path(res["file"]).name
        if name in SAMPLE_LABELS:
            assert res["label"] == SAMPLE_LABELS[name]
    volume = batched[files.index(str(SAMPLES / "nifti/Te-pi_0014.nii.gz"))]
    assert volume["slices"] > 1 and "slice" in volume


@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])
def test_compiled_runtimes_take_a_batch_and_answer_as_one_at_a_time(runtime, tmp_path):
    """The compiled graphs keep the export's dynamic batch axis: a batch is taken whole
    (no per-item fallback) and gives each scan the logits it gets alone."""
    from models import build_model

    torch.manual_seed(0)
    model = compile_model(build_model("alexnet", pretrained=False).eval(), runtime, "fp32")
    files, _ = _files(tmp_path)
    xs = [item.x for item in (read_scan_input(f, model.spec) for f in files) if item.x is not None]
    batcher = _Batcher(model)
    batched = batcher.probabilities(xs)
    assert batcher.batched, f"{runtime} refused a batch of {len(xs)}"
    with torch.no_grad():
        logits = model(torch.stack(xs))
        alone = torch.cat([model(x.unsqueeze(0)) for x in xs])
    assert len({tuple(row) for row in logits.tolist()}) > len(xs) // 2  # scans differ (twins share pixels)
    torch.testing.assert_close(logits, alone, rtol=1e-5, atol=1e-6)
    lines = list(predict_files(model, files, batch_size=4, readers=2))
    assert [r["file"] for r in lines] == files
    got = [list(r["probabilities"].values()) for r in lines if "error" not in r]
    assert max(abs(a - b) for g, p in zip(got, batched) for a, b in zip(g, p)) < 1e-5


def test_timing_is_per_scan_and_only_when_asked(vgg16):
    files = [str(SAMPLES / "Te-no_0021.jpg"), str(SAMPLES / "Te-pi_0014.jpg")]
    timed = list(predict_files(vgg16, files, repeats=2))
    assert [r["file"] for r in timed] == files
    assert all(r["latency_ms"] > 0 for r in timed)
    untimed = list(predict_files(vgg16, files, readers=0))
    assert all("latency_ms" not in r for r in untimed)
    for a, b in zip(timed, untimed):
        _assert_same(a, b, tol=1e-5)


def _cli(*args: str) -> subprocess.Popen:
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"}
    # SIGINT back to its default in the child, so that Python installs its Ctrl+C handler
    # even when this test runs in a background job (which ignores SIGINT).
    return subprocess.Popen([sys.executable, "-m", "hscc_mri", "predict", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def test_cli_prints_each_line_as_it_is_known_and_ctrl_c_keeps_them(tmp_path):
    """A long run: the first lines arrive while the process still runs; Ctrl+C then ends
    it with status 130 and every line printed is whole; progress went to stderr."""
    files, broken = _files(tmp_path)
    many = (files * 30)[:300]
    proc = _cli("--model", "vgg16-brain-mri", "--runtime", "torch", "--precision", "fp32", "--json", *many)
    assert proc.stdout is not None and proc.stderr is not None
    first = json.loads(proc.stdout.readline())
    assert first["file"] == many[0] and first["label"] == SAMPLE_LABELS[Path(many[0]).name]
    assert (first["model"], first["runtime"], first["precision"]) == ("vgg16-brain-mri", "torch", "fp32")
    assert proc.poll() is None, "the run ended before its first line could be read"
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    rest, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err[-2000:]
    lines = [first] + [json.loads(line) for line in rest.splitlines()]  # each line whole JSON
    assert 1 <= len(lines) < len(many)
    assert [r["file"] for r in lines] == many[: len(lines)]
    assert all(("error" in r) == (r["file"] == broken) for r in lines)
    assert "/300" in err and "Traceback" not in err, err  # progress on stderr


def test_cli_table_output_and_timing(tmp_path):
    files, broken = _files(tmp_path)
    files = files[4:7]  # a sample, the damaged file, a sample
    proc = _cli("--model", "vgg16-brain-mri", "--runtime", "torch", "--precision", "fp32", "--timing",
                "--repeats", "1", *files)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 1, err[-2000:]  # one file could not be read
    rows = out.splitlines()
    assert [r.split(": ", 1)[0] for r in rows] == files
    assert "ERROR" in rows[1] and "broken.jpg" in rows[1]
    for row in (rows[0], rows[2]):
        assert row.endswith(" ms)") and "(p=" in row
