"""The release's safety net (``hscc_mri.safety_net``) and ``predict`` with it: a threshold
measured into a manifest, and real scans below it answered by the real uncompressed model."""
from __future__ import annotations

import json
import os
import shutil

import pytest

from hscc_mri.release import MANIFEST, REFERENCE, RELEASE_DIR, load_release, verify_release
from hscc_mri.release_build import add_safety_net
from hscc_mri.safety_net import safety_net_for

from tests.mri.test_release import small_release, tiny_registered  # noqa: F401 (fixtures)
from tests.paths import MINI_TESTING, SAMPLES


def _linked_copy(src, dst):
    """The release folder with its files hard-linked (no copy of the weights) and its own
    manifest file, which the test may rewrite."""
    dst.mkdir()
    for f in src.iterdir():
        if f.name == MANIFEST:
            shutil.copyfile(f, dst / f.name)
        else:
            try:
                os.link(f, dst / f.name)
            except OSError:
                shutil.copyfile(f, dst / f.name)
    return dst


def test_the_safety_net_is_measured_into_the_manifest_only(small_release, tmp_path):  # noqa: F811
    folder, manifest = small_release
    copy = _linked_copy(folder, tmp_path / "release")
    written = add_safety_net(copy, MINI_TESTING, target=0.99, progress=False, log=lambda _m: None)
    assert verify_release(load_release(copy)) == []  # no model file changed
    entry = written["models"]["hscc-1.5x"]
    block = entry["safety_net"]
    assert block["target"] == 0.99 and block["select"]["n"] == manifest["test_set"]["n"] and block["select"]["folder"] == "Testing"
    chosen = block["float"]
    assert chosen["measure"] in ("top", "margin") and set(chosen["candidates"]) == {"top", "margin"}
    assert chosen["kept_agreement"] >= 0.99 and chosen["effective_agreement"] >= 0.99
    rule = safety_net_for(entry, "fp32")
    assert rule.threshold == chosen["threshold"] and safety_net_for(entry, "bf16").precision == "float"
    assert safety_net_for(entry, "int8") is None  # no int8 graph in this release
    assert "safety_net" not in written["models"][REFERENCE]
    assert json.loads((copy / MANIFEST).read_text()) == written


def _run_predict(release, *args):
    from tests.mri.test_cli import run_cli

    out = run_cli("predict", "--json", "--release", str(release), *args, *map(str, sorted(SAMPLES.glob("*.jpg"))))
    assert out.returncode == 0, out.stderr
    return [json.loads(line) for line in out.stdout.splitlines()], out.stderr


@pytest.mark.e2e
def test_scans_below_the_threshold_are_answered_by_the_uncompressed_model(tmp_path):
    """With the shipped models: a threshold set between the samples' confidences hands the
    less sure scans to the reference; their lines are the reference's answer and name it;
    the others are the compressed model's own; --no-safety-net gives it alone."""
    release = load_release(RELEASE_DIR)
    copy = _linked_copy(RELEASE_DIR, tmp_path / "release")
    alone, err = _run_predict(copy, "--no-safety-net")
    assert "safety net" not in err
    reference, _ = _run_predict(copy, "--uncompressed")
    tops = sorted(max(line["probabilities"].values()) for line in alone)
    threshold = (tops[1] + tops[2]) / 2  # the two least sure scans go over
    manifest = json.loads((copy / MANIFEST).read_text())
    record = {"measure": "top", "threshold": threshold, "n": 6, "handed_over": 2 / 6, "kept_agreement": 1.0}
    manifest["models"]["hscc-6x"]["safety_net"] = {"target": 0.995, "select": {"folder": "test", "n": 6},
                                                   "float": record, "int8": record}
    (copy / MANIFEST).write_text(json.dumps(manifest))
    lines, err = _run_predict(copy)
    assert "safety net: top < " in err
    handed = [line for line in lines if line["answered_by"] == "uncompressed"]
    assert len(handed) == 2 and len(lines) == 6
    for line, own, ref in zip(lines, alone, reference):
        assert line["file"] == own["file"] == ref["file"]
        assert line["confidence"]["value"] == pytest.approx(max(own["probabilities"].values()), abs=1e-5)
        assert line["confidence"]["compressed_label"] == own["label"] and line["model_ms"] > 0
        expected = ref if line["answered_by"] == "uncompressed" else own
        assert line["model"] == expected["model"]
        assert line["label"] == expected["label"]
        for k, p in expected["probabilities"].items():
            assert line["probabilities"][k] == pytest.approx(p, abs=1e-4)
    assert {line["model"] for line in handed} == {release.name(REFERENCE)}
