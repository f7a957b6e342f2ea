"""The release (``hscc_mri.release``): a small release built twice is bit-identical in its
weights, a changed file is refused with a clear message, the shipped release matches its
manifest, and int8 is served only on the CPU kind its plan was measured on."""
from __future__ import annotations

import copy
import json
import shutil

import pytest
import torch
from safetensors.torch import load_file

from hscc_mri.release import (MANIFEST, REFERENCE, RELEASE_DIR, Release, ReleaseError, load_release, load_released,
                              release_choice, verify_release)
from hscc_mri.release_build import make_release
from hscc_mri.runtimes import has_vnni, resolve_choice
from models import _registry

from tests.mri.test_cache import TINY, _tiny
from tests.paths import MINI_TESTING

#: A small HSCC build of the tiny CNN: 6 sample scans + 2 phantoms of calibration (seconds).
CALIBRATION = {"views": 1, "phantoms": 2}


@pytest.fixture(scope="module")
def tiny_registered():
    with pytest.MonkeyPatch.context() as mp:  # registered for this module only
        mp.setitem(_registry._BUILDERS, TINY, _tiny)
        yield


def _release(out, cache):
    return make_release(out, MINI_TESTING, model=TINY, budgets=(1.5,), cache_dir=cache, calibration=CALIBRATION,
                        int8=False, n_bootstrap=20, progress=False, command="test", log=lambda _m: None)


@pytest.fixture(scope="module")
def small_release(tmp_path_factory, tiny_registered):
    """A release of the tiny CNN at 1.5x, built through the release code path."""
    folder = tmp_path_factory.mktemp("small") / "release"
    return folder, _release(folder, folder.parent / "cache")


def test_small_release_rebuilds_its_recorded_bytes_and_matches_its_manifest(small_release, tmp_path):
    folder, manifest = small_release
    entry = manifest["models"]["hscc-1.5x"]
    assert entry["built_here"] and entry["build_key"]["calibration"]["views"] == 1
    assert manifest["default"] == "hscc-1.5x" and manifest["test_set"]["n"] > 0
    assert 0 <= entry["fidelity"]["agreement"] <= 1 and entry["fidelity"]["agreement_se"] is not None
    assert verify_release(load_release(folder)) == []
    assert json.loads((folder / MANIFEST).read_text()) == manifest
    again = _release(tmp_path / "release", tmp_path / "cache")  # a fresh cache: built again
    rebuilt = again["models"]["hscc-1.5x"]
    assert rebuilt["build_key"] == entry["build_key"]
    assert rebuilt["weights_sha256"] == entry["weights_sha256"]
    assert again["files"][rebuilt["file"]] == manifest["files"][entry["file"]]  # SHA-256 and size
    assert "total" in entry["build"]["seconds"]  # the build's timings live in the manifest, not the file
    first, second = load_file(folder / entry["file"]), load_file(tmp_path / "release" / rebuilt["file"])
    assert first.keys() == second.keys()
    for name in first:
        assert torch.equal(first[name], second[name]), name
    assert again["test_set"]["sha256"] == manifest["test_set"]["sha256"]
    assert again["models"]["hscc-1.5x"]["fidelity"] == entry["fidelity"]
    given = make_release(tmp_path / "given", None, model=TINY, budgets=(1.5,), calibration=CALIBRATION, int8=False,
                         artifacts={1.5: tmp_path / "release" / rebuilt["file"]}, cache_dir=tmp_path / "unused",
                         progress=False, log=lambda _m: None)
    shipped = given["models"]["hscc-1.5x"]
    assert not shipped["built_here"] and shipped["given_file"] == rebuilt["file"]
    assert shipped["build_key"] == entry["build_key"]  # recognised as the recipe's build
    assert given["files"][rebuilt["file"]] == manifest["files"][entry["file"]] and given["test_set"] is None
    assert not (tmp_path / "unused").exists()  # nothing built


def test_a_distilled_model_ships_with_its_training_data_and_no_build_key(small_release, tmp_path):
    """A distilled artifact is not the recipe's build (no build key: a rebuild cannot make
    it), its distillation record travels in the manifest, and the page calls it distilled."""
    from hscc_core import MatchingConfig
    from hscc_mri.distillation import distil_artifact
    from webapp.models import _method_name

    folder, manifest = small_release
    built = folder / manifest["models"]["hscc-1.5x"]["file"]
    distilled = tmp_path / "distilled.safetensors"
    config = MatchingConfig(epochs=1, steps_per_epoch=2, batch_size=4, lr=1e-3, warmup_steps=0, precision="float32")
    distil_artifact(built, MINI_TESTING, MINI_TESTING, distilled, config, teacher_runtime="pytorch", progress=False,
                    log=lambda _m: None)
    given = make_release(tmp_path / "given", None, model=TINY, budgets=(1.5,), calibration=CALIBRATION, int8=False,
                         artifacts={1.5: distilled}, cache_dir=tmp_path / "unused", progress=False,
                         log=lambda _m: None)
    entry = given["models"]["hscc-1.5x"]
    assert entry["build_key"] is None and entry["report"]["distillation"]["pool"]["n"] > 0
    learned = given["training_data"]["compressed"]["distilled"]["hscc-1.5x"]
    assert learned["pool"]["sha256"] == entry["report"]["distillation"]["pool"]["sha256"]
    assert learned["teacher"] == TINY and "no labels" in given["training_data"]["compressed"]["note"]
    assert manifest["training_data"]["compressed"].startswith("none beyond the calibration set")
    assert _method_name(entry["report"], "hscc") == "HSCC 1.5x, distilled"
    assert _method_name(manifest["models"]["hscc-1.5x"]["report"], "hscc") == "HSCC 1.5x"


def test_a_changed_release_file_is_refused_with_a_clear_message(small_release, tmp_path):
    folder, manifest = small_release
    tampered = tmp_path / "release"
    shutil.copytree(folder, tampered)
    file = manifest["models"]["hscc-1.5x"]["file"]
    data = bytearray((tampered / file).read_bytes())
    data[len(data) // 2] ^= 0x01
    (tampered / file).write_bytes(bytes(data))
    release = load_release(tampered)
    expected = manifest["files"][file]["sha256"][:12]
    with pytest.raises(ReleaseError, match=rf"{file} is corrupt or was changed: SHA-256 [0-9a-f]{{12}}… found, "
                                           rf"{expected}… expected by manifest.json; it is not used"):
        load_released(release, "hscc-1.5x", resolve_choice("torch", "fp32"))
    problems = verify_release(release)
    assert len(problems) == 1 and file in problems[0]


def test_shipped_release_matches_its_manifest():
    """Every file of ``release/`` is in the manifest with its size and SHA-256 (and no
    other file is there); the whole stays under 80 MB."""
    release = load_release(RELEASE_DIR)
    assert verify_release(release) == []
    on_disk = {p.name for p in RELEASE_DIR.iterdir()} - {MANIFEST}
    assert on_disk == set(release.manifest["files"])
    total = sum(f["size"] for f in release.manifest["files"].values())
    assert total == release.manifest["total_bytes"] <= 80e6
    assert release.key_for() == "hscc-6x" and release.budgets() == [3.0, 6.0]
    for key, entry in release.models.items():
        assert entry["fidelity"]["agreement"] is not None, key
        if key != REFERENCE:
            assert entry["file"] in release.manifest["files"] and entry["evaluation"] in release.manifest["files"]


def test_int8_only_on_the_cpu_kind_its_plan_was_measured_on():
    """The auto choice takes the shipped int8 graphs only where their plans were measured on
    this CPU kind; elsewhere the best float choice, at once, saying why."""
    release = load_release(RELEASE_DIR)
    keys = [release.key_for(), REFERENCE]
    if not all(release.models[k].get("int8") for k in keys):
        pytest.fail("the shipped release should carry int8 graphs of the default pair")
    for vnni in (True, False):
        manifest = copy.deepcopy(release.manifest)
        for k in keys:
            manifest["models"][k]["int8"]["measured_on"]["vnni"] = vnni
        choice = release_choice(Release(release.folder, manifest), keys)
        if vnni == has_vnni():
            assert (choice.runtime, choice.precision) == ("openvino", "int8"), choice
        else:
            assert choice.precision != "int8" and "measured on" in choice.reason and "no start-up" in choice.reason
            assert choice.precision == resolve_choice("openvino", "auto").precision


@pytest.mark.e2e  # three CLI processes with the full-size models
def test_predict_runs_what_the_app_shows_and_names_it():
    """No ``--model``: the release's default compressed model (the app's); ``--budget 3``
    and ``--uncompressed`` the release's others; each named with 12 hex of its SHA-256."""
    from tests.mri.test_cli import run_cli
    from tests.paths import SAMPLE_LABELS, SAMPLES

    release = load_release(RELEASE_DIR)
    scan = "Te-me_0017.jpg"
    for args, key in (((), "hscc-6x"), (("--budget", "3"), "hscc-3x"), (("--uncompressed",), REFERENCE)):
        out = run_cli("predict", *args, "--json", str(SAMPLES / scan))
        assert out.returncode == 0, out.stderr
        line = json.loads(out.stdout.splitlines()[0])
        assert line["label"] == SAMPLE_LABELS[scan]
        assert f"running {release.name(key)} in " in out.stderr
        choice = release_choice(release, [key])
        assert (line["runtime"], line["precision"]) == (choice.runtime, choice.precision)
    refused = run_cli("predict", "--budget", "4", str(SAMPLES / scan))
    assert refused.returncode == 2 and "the budgets 3, 6" in refused.stderr
    both = run_cli("predict", "--model", "vgg16-brain-mri", "--uncompressed", str(SAMPLES / scan))
    assert both.returncode == 2 and "without --uncompressed" in both.stderr
