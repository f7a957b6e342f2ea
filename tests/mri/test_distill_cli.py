"""``hscc-mri distill`` end to end on real scans: a compressed AlexNet learns from its
original on the 32-scan fixture, resumes from its checkpoint and writes a loadable artifact."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from hscc_core import CompressionConfig
from hscc_core.compression import compress
from hscc_mri.resolve import load_model, save_model
from models import build_model

ROOT = Path(__file__).resolve().parents[2]
MINI = ROOT / "tests" / "fixtures" / "brain-mri-mini" / "Testing"


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hscc_mri", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=600)


def _pair(tmp_path: Path) -> tuple[Path, Path]:
    torch.manual_seed(0)
    dense = build_model("alexnet")
    # Convolutions only: an SVD of the classifier's 9216 x 4096 matrix would take minutes.
    compressed, _ = compress(dense, None, CompressionConfig(method="svd", budget=1.5, include=("features.*",)),
                             progress=False)
    teacher, student = tmp_path / "alexnet.safetensors", tmp_path / "alexnet-svd3.safetensors"
    save_model(dense, teacher)
    save_model(compressed, student)
    return teacher, student


@pytest.mark.e2e  # two CLI processes that read the pool and train: about a minute on 2 cores
def test_distill_runs_in_sittings_and_writes_the_best_epoch(tmp_path):
    teacher, student = _pair(tmp_path)
    common = ["distill", "--artifact", str(student), "--teacher", str(teacher), "--pool", str(MINI),
              "--select", str(MINI), "--epochs", "2", "--steps-per-epoch", "2", "--batch-size", "8",
              "--precision", "float32", "--checkpoint", str(tmp_path / "run.pt"), "--threads", "2"]
    first = _cli(*common, "--time-limit", "0", "--out", str(tmp_path / "out.safetensors"))
    assert first.returncode == 0, first.stderr
    assert "run the same command again" in first.stdout and not (tmp_path / "out.safetensors").exists()
    second = _cli(*common, "--out", str(tmp_path / "out.safetensors"), "--json", str(tmp_path / "run.json"))
    assert second.returncode == 0, second.stderr
    assert "resumed run.pt at step 1/4" in second.stderr
    record = json.loads((tmp_path / "run.json").read_text())
    assert record["finished"] and [row["epoch"] for row in record["history"]] == [1, 2]
    assert record["pool"]["n"] == 32 and record["select"]["n"] == 32 and record["teacher"] == teacher.name
    distilled = load_model(tmp_path / "out.safetensors")
    assert distilled.hscc_replacements and distilled.spec.name == "alexnet"
    # --export-best writes the checkpoint's best student: here the finished run's own
    exported = _cli("distill", "--artifact", str(student), "--checkpoint", str(tmp_path / "run.pt"), "--export-best",
                    "--out", str(tmp_path / "best.safetensors"))
    assert exported.returncode == 0, exported.stderr
    assert "at step 4/4" in exported.stderr
    best = load_model(tmp_path / "best.safetensors").state_dict()
    for name, tensor in distilled.state_dict().items():
        assert torch.equal(tensor, best[name]), name
    from hscc_mri.cache import load_report

    assert load_report(tmp_path / "best.safetensors")["distillation"]["finished"]


def test_distill_refuses_a_dense_artifact_and_missing_folders(tmp_path, capsys):
    from hscc_mri.cli import main

    teacher = tmp_path / "alexnet.safetensors"
    save_model(build_model("alexnet"), teacher)
    code = main(["distill", "--artifact", str(teacher), "--pool", str(MINI), "--select", str(MINI), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "is not a compressed model" in err and "Traceback" not in err
    code = main(["distill", "--artifact", str(teacher), "--pool", str(tmp_path / "nope"), "--select", str(MINI)])
    assert code == 2 and "--pool" in capsys.readouterr().err


@pytest.mark.e2e  # the full-size VGG16 in PyTorch and its int8 graph
def test_the_int8_teacher_gives_the_original_logits_and_feature_map():
    """The release's int8 graph of the reference, with the feature map added as an output,
    stands in for the PyTorch teacher: same answers on real scans, nearly the same logits
    and feature map entering the last pooling layer."""
    from hscc_core.matching import module_teacher
    from hscc_mri.distillation import release_teacher
    from hscc_mri.resolve import resolve_model
    from hscc_mri.testset import load_test_set

    from tests.paths import MINI_TESTING

    teacher, how = release_teacher("vgg16-brain-mri")
    assert teacher is not None and "int8 OpenVINO" in how and "checked" in how
    original = resolve_model("vgg16-brain-mri")
    x = load_test_set(MINI_TESTING, original.spec, progress=False).inputs[:16].float()
    logits, features = teacher(x)
    ref_logits, ref_features = module_teacher(original)(x)
    assert features.shape == ref_features.shape == (16, 512, 15, 15)
    assert (logits.argmax(1) == ref_logits.argmax(1)).float().mean() >= 15 / 16
    assert float((features - ref_features).pow(2).sum() / ref_features.pow(2).sum()) < 0.01
    assert release_teacher("alexnet") == (None, "the release has no int8 graph of alexnet")
