"""The build-once cache of compressed models (``hscc_core.cache``).

Runs on a tiny CNN registered only for this module (real builds take a second).
"""
from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from hscc_core import ArtifactError, report_path
from hscc_mri import cache
from hscc_mri.resolve import load_model, save_model, save_model_with_report
from hscc_mri.cache import cache_path, compressed_model, load_report
from models import ModelSpec
from models import _registry

TINY = "tiny-cache-test-cnn"


class TinyCNN(nn.Module):
    """features / avgpool / classifier, like the registry's models, on 32x32 grey input."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 64, 3, padding=1),
                                      nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(64, 64, 3, padding=1), nn.ReLU())
        self.avgpool = nn.AdaptiveAvgPool2d(2)
        self.classifier = nn.Sequential(nn.Linear(256, 64), nn.ReLU(), nn.Linear(64, 4))
        self.spec = ModelSpec(name=TINY, input_size=(32, 32), channels=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


def _tiny(pretrained: bool = True) -> TinyCNN:  # noqa: ARG001
    torch.manual_seed(0)  # "pretrained": the same weights every time
    return TinyCNN()


@pytest.fixture(scope="module", autouse=True)
def tiny_registered():
    with pytest.MonkeyPatch.context() as mp:  # registered for this module only
        mp.setitem(_registry._BUILDERS, TINY, _tiny)
        yield


@pytest.fixture(scope="module")
def built(tmp_path_factory, tiny_registered):
    """One real build: Global SVD of the tiny CNN at 3x."""
    folder = tmp_path_factory.mktemp("cache")
    model, report = compressed_model(TINY, "svd", 3.0, folder, progress=False)
    return folder, model, report


def test_first_call_builds_artifact_and_report(built):
    folder, model, report = built
    path = cache_path(TINY, "svd", 3.0, folder)
    assert path.is_file() and report_path(path).is_file()
    assert path.name.startswith(f"{TINY}-svd-3x-") and len(path.stem.rsplit("-", 1)[1]) == 10
    assert report["flops_original"] / report["flops_compressed"] == pytest.approx(3.0, rel=0.1)
    assert report["params_compressed"] < report["params_original"]
    assert json.loads(report_path(path).read_text())["flops_compressed"] == report["flops_compressed"]
    assert load_report(path) == json.loads(json.dumps(report))


def test_second_call_loads_from_cache_with_identical_outputs(built, monkeypatch):
    folder, model, report = built

    def no_build(*args, **kwargs):
        raise AssertionError("rebuilt although cached")

    monkeypatch.setattr(cache, "_build", no_build)
    messages = []
    again, report2 = compressed_model(TINY, "svd", 3.0, folder, log=messages.append)
    assert any("loaded cached" in m for m in messages)
    assert report2 == json.loads(json.dumps(report))
    x = torch.randn(2, *model.spec.input_shape(1)[1:], generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        assert torch.equal(model(x), again(x))


def test_rebuild_and_unreadable_cache_build_again(built, monkeypatch):
    folder, _, _ = built
    calls = []

    def fake_build(model_name, method, budget, calibration, path, progress):
        calls.append(path)
        model = _tiny()
        save_model(model, path, extra={"report": {"flops_original": 1, "flops_compressed": 1}})
        return model, {"flops_original": 1, "flops_compressed": 1}

    monkeypatch.setattr(cache, "_build", fake_build)
    compressed_model(TINY, "svd", 3.0, folder, rebuild=True, progress=False)
    assert len(calls) == 1
    path = calls[0]
    path.write_bytes(b"not a safetensors file")
    messages = []
    _, report = compressed_model(TINY, "svd", 3.0, folder, log=messages.append)
    assert len(calls) == 2 and report["flops_compressed"] == 1
    assert any("cannot be loaded" in m for m in messages)


def test_file_name_tracks_everything_that_changes_the_model(tmp_path):
    base = cache_path("vgg16-brain-mri", "hscc", 6.0, tmp_path)
    assert base.parent == tmp_path and base.name.startswith("vgg16-brain-mri-hscc-6x-")
    assert base == cache_path("vgg16-brain-mri", "hscc", 6, tmp_path)
    others = [cache_path("vgg16-brain-mri", "hscc", 3.0, tmp_path),
              cache_path("vgg16-brain-mri", "svd", 6.0, tmp_path),
              cache_path("alexnet", "hscc", 6.0, tmp_path),
              cache_path("vgg16-brain-mri", "hscc", 6.0, tmp_path, calibration={"views": 8}),
              cache_path("vgg16-brain-mri", "hscc", 6.0, tmp_path, calibration={"seed": 1})]
    assert len({base, *others}) == 6
    # Weights-only methods use no calibration images: their name ignores the calibration.
    assert cache_path("alexnet", "svd", 3, tmp_path) == cache_path("alexnet", "svd", 3, tmp_path,
                                                                    calibration={"views": 2})
    with pytest.raises(ValueError):
        cache_path("alexnet", "nope", 3, tmp_path)


def test_artifact_models_are_identified_by_content(built, tmp_path):
    from models import build_model

    trained = tmp_path / "alexnet-trained.safetensors"
    save_model(build_model("alexnet"), trained)
    first = cache_path(str(trained), "svd", 3.0, tmp_path)
    assert first.name.startswith("alexnet-trained-svd-3x-")
    save_model(build_model("alexnet"), trained)  # "retrained": new (random) weights, same name
    assert cache_path(str(trained), "svd", 3.0, tmp_path) != first
    compressed = save_model(built[1], tmp_path / "alexnet-svd.safetensors")
    with pytest.raises(ValueError, match="already compressed"):
        compressed_model(str(compressed), "svd", 3.0, tmp_path, progress=False)
    with pytest.raises(ArtifactError):
        cache_path(str(tmp_path / "missing.safetensors"), "svd", 3.0, tmp_path)


def test_hscc_builds_with_calibration_and_is_cached(tmp_path, monkeypatch):
    model, report = compressed_model(TINY, "hscc", 1.5, tmp_path, progress=False,
                                     calibration={"views": 1, "phantoms": 2})
    assert report["config"]["method"] == "hscc" and report["calibration_images"] == 6 + 2
    monkeypatch.setattr(cache, "_build", lambda *a, **k: pytest.fail("rebuilt although cached"))
    again, _ = compressed_model(TINY, "hscc", 1.5, tmp_path, progress=False, calibration={"views": 1, "phantoms": 2})
    x = torch.randn(3, 1, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        assert torch.equal(model(x), again(x))


def _key_of_copy(tree) -> str:
    """The default HSCC build's cache file name as computed by the code in ``tree`` (a
    copy of the packages; the data folders are the repository's)."""
    import subprocess
    import sys

    code = "from hscc_mri.cache import cache_path; print(cache_path().name)"
    out = subprocess.run([sys.executable, "-c", code], cwd=tree, capture_output=True, text=True, timeout=300,
                         env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_build_key_is_the_algorithm_version_not_the_source_bytes(tmp_path):
    """The key is model + config + calibration recipe and files + an explicit algorithm
    version: a copy of the code whose every module of the compressor, the scan reading and
    the models got a comment computes the same key; bumping
    :data:`~hscc_mri.cache.BUILD_ALGORITHM_VERSION` changes it."""
    import shutil

    from tests.paths import ROOT

    key = cache.build_key(TINY, "hscc", 1.5, {"views": 1, "phantoms": 2})
    assert set(key) == {"model", "config", "calibration", "algorithm_version"}
    assert key["algorithm_version"] == cache.BUILD_ALGORITHM_VERSION
    tree = tmp_path / "tree"
    for package in ("hscc_core", "hscc_mri", "models", "preprocessing"):
        shutil.copytree(ROOT / package, tree / package, ignore=shutil.ignore_patterns("__pycache__"))
    for folder in ("data", "samples"):
        (tree / folder).symlink_to(ROOT / folder)
    original = _key_of_copy(tree)
    assert original == cache_path().name  # the copy computes what this checkout does
    for package in ("hscc_core", "models", "preprocessing"):
        for f in (tree / package).rglob("*.py"):
            f.write_text(f.read_text() + "\n# an edit that changes no result\n")
    calibration = tree / "hscc_mri" / "calibration.py"
    calibration.write_text(calibration.read_text() + "\n# an edit that changes no result\n")
    assert _key_of_copy(tree) == original
    source = tree / "hscc_mri" / "cache.py"
    text = source.read_text()
    assert f"BUILD_ALGORITHM_VERSION = {cache.BUILD_ALGORITHM_VERSION}\n" in text
    source.write_text(text.replace(f"BUILD_ALGORITHM_VERSION = {cache.BUILD_ALGORITHM_VERSION}\n",
                                   f"BUILD_ALGORITHM_VERSION = {cache.BUILD_ALGORITHM_VERSION + 1}\n"))
    bumped = _key_of_copy(tree)
    assert bumped != original and bumped.startswith("vgg16-brain-mri-hscc-6x-")
