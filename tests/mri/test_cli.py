"""The command line, run as a user would: ``hscc-mri ...`` from the repo root."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.paths import ROOT, SAMPLE_LABELS, SAMPLES

DERIVED = {  # derived DICOM/NIfTI sample -> the JPEG it was made from
    "dicom/Te-me_0016.dcm": "Te-me_0016.jpg",
    "dicom/Te-gl_0010_multiframe.dcm": "Te-gl_0010.jpg",
    "nifti/Te-pi_0014.nii.gz": "Te-pi_0014.jpg",
    "nifti/Te-no_0021.nii": "Te-no_0021.jpg",
}


def run_cli(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"}
    return subprocess.run([sys.executable, "-m", "hscc_mri", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


def test_help_explains_every_command(capsys):
    out = run_cli("--help")  # the installed entry point, once, in a process of its own
    assert out.returncode == 0
    from hscc_mri.cli import main

    for cmd in ("train", "compress", "predict", "bench", "evaluate", "distill", "release"):
        assert cmd in out.stdout
        with pytest.raises(SystemExit) as done:  # in this process: argparse's help exits 0
            main([cmd, "--help"])
        assert done.value.code == 0 and "usage:" in capsys.readouterr().out


@pytest.mark.e2e
def test_predict_labels_real_and_derived_samples_and_carries_on_after_bad_files(tmp_path):
    bad = tmp_path / "broken.dcm"
    bad.write_bytes(b"\x00" * 128 + b"DICM" + b"\x02\x00\x10\x00UI")  # truncated DICOM header
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    files = [str(SAMPLES / f) for f in SAMPLE_LABELS] + [str(SAMPLES / f) for f in DERIVED] + [str(bad), str(empty)]
    out = run_cli("predict", "--model", "vgg16-brain-mri", "--json", "--repeats", "1", *files)
    assert out.returncode == 1, out.stderr  # 1: some files could not be read
    results = [json.loads(line) for line in out.stdout.splitlines()]
    assert [r["file"] for r in results] == files
    by_name = {Path(r["file"]).relative_to(SAMPLES).as_posix() if r["file"].startswith(str(SAMPLES)) else
               Path(r["file"]).name: r for r in results}
    for fname, label in SAMPLE_LABELS.items():
        r = by_name[fname]
        assert r["label"] == label, r
        assert set(r["probabilities"]) == set(SAMPLE_LABELS.values())
        assert abs(sum(r["probabilities"].values()) - 1) < 1e-4 and r["latency_ms"] > 0
    for derived, jpeg in DERIVED.items():
        assert by_name[derived]["label"] == SAMPLE_LABELS[jpeg], by_name[derived]
        assert max(abs(by_name[derived]["probabilities"][c] - by_name[jpeg]["probabilities"][c])
                   for c in by_name[jpeg]["probabilities"]) < 1e-3
    assert "slice" in by_name["nifti/Te-pi_0014.nii.gz"]
    for name in ("broken.dcm", "empty.png"):
        err = by_name[name]["error"]
        assert "broken.dcm" in err or "empty.png" in err
        assert "Traceback" not in err


def test_predict_rejects_an_unknown_model_with_a_clear_message():
    out = run_cli("predict", "--model", "no-such-model", str(SAMPLES / "Te-gl_0010.jpg"))
    assert out.returncode == 2
    assert "neither a model name" in out.stderr and "Traceback" not in out.stderr


@pytest.mark.e2e
def test_train_on_phantoms_writes_a_loadable_checkpoint_and_a_report(tmp_path):
    out_path = tmp_path / "alexnet.safetensors"
    out = run_cli("train", "--model", "alexnet", "--data", "phantoms", "--epochs", "1", "--n-train", "32",
                  "--n-val", "8", "--n-test", "8", "--batch-size", "16", "--out", str(out_path))
    assert out.returncode == 0, out.stderr
    report = json.loads(out_path.with_suffix(".json").read_text())
    assert report["sizes"] == {"train": 32, "val": 8, "test": 8}
    assert 0 <= report["test"]["accuracy"] <= 1 and len(report["test"]["confusion"]) == 4
    pred = run_cli("predict", "--model", str(out_path), "--json", "--repeats", "1", str(SAMPLES / "Te-gl_0010.jpg"))
    assert pred.returncode == 0, pred.stderr
    assert json.loads(pred.stdout)["label"] in SAMPLE_LABELS.values()


@pytest.mark.e2e
def test_train_on_a_folder_data_set(tmp_path):
    from preprocessing.phantoms import phantom_sample

    names = {0: "glioma_tumor", 1: "meningioma_tumor", 2: "no_tumor", 3: "pituitary_tumor"}
    for split, seed, n in (("Training", 1, 24), ("Testing", 2, 8)):
        for i in range(n):
            img, label = phantom_sample(i, seed)
            folder = tmp_path / "data" / split / names[label]
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray((img * 255).astype(np.uint8)).save(folder / f"{i}.png")
    out = run_cli("train", "--model", "alexnet", "--data", str(tmp_path / "data"), "--epochs", "1",
                  "--batch-size", "8", "--val-fraction", "0.25", "--num-workers", "0",
                  "--out", str(tmp_path / "m.safetensors"))
    assert out.returncode == 0, out.stderr
    report = json.loads((tmp_path / "m.json").read_text())
    sizes = report["sizes"]
    assert sizes["train"] + sizes["val"] == 24 and 4 <= sizes["val"] <= 8 and sizes["test"] == 8


@pytest.mark.e2e
@pytest.mark.parametrize("method", ["svd", "hscc"])
def test_compress_cli_writes_artifact_and_report(tmp_path, method):
    out_path = tmp_path / f"{method}.safetensors"
    args = ["compress", "--model", "alexnet", "--method", method, "--budget", "4", "--out", str(out_path)]
    if method == "hscc":
        args += ["--regions", "2x2", "--calib", "phantoms", "--calib-phantoms", "8"]
    out = run_cli(*args)
    assert out.returncode == 0, out.stderr
    report = json.loads(out_path.with_suffix(".json").read_text())
    assert abs(report["flops_ratio"] / 4 - 1) < 0.02
    assert report["layers"] and all("ranks" in layer for layer in report["layers"])
    bad = run_cli("compress", "--model", "alexnet", "--regions", "2by2", "--out", str(out_path))
    assert bad.returncode == 2 and "2x2" in bad.stderr


@pytest.mark.e2e
def test_compress_cli_calibrates_on_a_folder_and_distils_on_other_scans(tmp_path):
    """--calib DIR with class folders (balanced, --calib-scans), the recipe in the report,
    and distillation on unlabelled scans of another folder (--finetune-data)."""
    fixture = ROOT / "tests" / "fixtures" / "brain-mri-mini" / "Testing"
    out_path = tmp_path / "hscc.safetensors"
    out = run_cli("compress", "--model", "alexnet", "--method", "hscc", "--budget", "3", "--include", "features.*",
                  "--calib", str(fixture), "--calib-scans", "8", "--finetune-epochs", "1",
                  "--finetune-data", str(fixture), "--finetune-scans", "12", "--no-figures", "--out", str(out_path))
    assert out.returncode == 0, out.stderr
    report = json.loads(out_path.with_suffix(".json").read_text())
    assert report["calibration_images"] == 8
    assert report["calibration"] == {"source": str(fixture), "scans": 8, "views": 1, "phantoms": 0, "seed": 0}
    assert report["finetune"]["data"] == {"folder": "Testing", "images": 12}
    assert report["finetune"]["images_train"] + report["finetune"]["images_val"] == 12
    bad = run_cli("compress", "--model", "alexnet", "--calib", str(tmp_path / "none"), "--out", str(out_path))
    assert bad.returncode == 2 and "--calib" in bad.stderr


@pytest.mark.e2e
def test_predict_survives_one_bad_file_of_each_kind_and_reads_series(tmp_path):
    """Issue 13: panics, extreme values, zero-filled files, huge offsets and damaged
    compressed frames between good scans; a zipped DICOM series and its NIfTI twin."""
    import zipfile

    from preprocessing import load_scan, write_nifti_volume
    from tests.preprocessing import test_scan_defects as defects
    from tests.preprocessing import test_series as series

    bad = tmp_path / "bad"
    bad.mkdir()
    vol = np.zeros((6, 16, 16), np.float32)
    vol[2], vol[3] = 3e38, -3e38
    write_nifti_volume(vol, bad / "extreme.nii")
    (bad / "panic.dcm").write_bytes(defects.rle_panic_bytes()[0])
    (bad / "zeros.dcm").write_bytes(bytes(4 * 1024 * 1024))
    offset = bytearray(defects._nifti_bytes(352))
    offset[108:112] = np.float32(1e9).tobytes()
    (bad / "offset.nii").write_bytes(bytes(offset))
    jpg = (SAMPLES / "Te-gl_0010.jpg").read_bytes()
    defects._encapsulated(bad / "cut.dcm", jpg[: len(jpg) // 3], "1.2.840.10008.1.2.4.50", 512, 512, 3, 8,
                          "YBR_FULL_422")
    folder = tmp_path / "Te-pi_0014_series"
    series.write_series(folder, load_scan(series.TWIN).data)
    archive = tmp_path / "Te-pi_0014_series.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for p in sorted(folder.iterdir()):
            zf.write(p, p.name)
    good = [str(SAMPLES / f) for f in SAMPLE_LABELS]
    bad_files = [str(p) for p in sorted(bad.iterdir())]
    files = [good[0]]
    for b, g in zip(bad_files, good[1:] * 2):
        files += [b, g]
    files += [str(archive), str(folder), str(series.TWIN)]
    env_run = run_cli("predict", "--model", "vgg16-brain-mri", "--json", "--repeats", "1", *files)
    assert env_run.returncode == 1, env_run.stderr
    assert "Traceback" not in env_run.stderr and "panicked" not in env_run.stderr, env_run.stderr
    results = [json.loads(line) for line in env_run.stdout.splitlines()]
    assert [r["file"] for r in results] == files
    by_file = {r["file"]: r for r in results}
    for f in bad_files:
        assert "error" in by_file[f] and Path(f).name in by_file[f]["error"], by_file[f]
    for f in files:
        if f not in bad_files:
            assert "label" in by_file[f], by_file[f]
    for f in good:
        assert by_file[f]["label"] == SAMPLE_LABELS[Path(f).name]
    twin = by_file[str(series.TWIN)]
    for f in (str(archive), str(folder)):
        assert by_file[f]["label"] == twin["label"] and by_file[f]["slices"] == 7 == twin["slices"]
        assert by_file[f]["slice"] == twin["slice"] and by_file[f]["series"] == "T1 AX"
        assert max(abs(by_file[f]["probabilities"][c] - twin["probabilities"][c]) for c in twin["probabilities"]) < 1e-4


def test_compress_with_an_include_pattern_that_matches_nothing_is_a_one_line_error(tmp_path):
    out = run_cli("compress", "--model", "alexnet", "--method", "svd", "--include", "nothing.*",
                  "--out", str(tmp_path / "x.safetensors"))
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr and "match no layer" in out.stderr
    assert out.stderr.strip().splitlines()[-1].startswith("error: the include patterns ['nothing.*']")
