"""An artifact's family of files (hscc_mri.bundle) and the product's identities
(hscc_mri.identity): one naming scheme that every writer and reader uses, and hashes that
change exactly when what they identify changes."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from torch import nn

import hscc_core
from hscc_mri.bundle import ArtifactBundle
from hscc_mri.deploy import Deployable
from hscc_mri.identity import file_sha256, files_identity, key_digest, module_identity, weights_identity
from hscc_mri.release import MANIFEST, RELEASE_DIR
from hscc_mri.sidecar import evaluation_path
from tests.paths import ROOT


def test_every_member_is_the_stem_plus_one_suffix(tmp_path):
    bundle = ArtifactBundle.of(tmp_path / "vgg16-hscc-6x.safetensors")
    assert bundle.name == "vgg16-hscc-6x"
    assert bundle.artifact == tmp_path / "vgg16-hscc-6x.safetensors"
    assert bundle.report == tmp_path / "vgg16-hscc-6x.json" == hscc_core.report_path(bundle.artifact)
    assert bundle.evaluation == tmp_path / "vgg16-hscc-6x.evaluation.json" == evaluation_path(bundle.artifact)
    assert bundle.target_curve == tmp_path / "vgg16-hscc-6x.target.json"
    assert bundle.int8_plan("openvino") == tmp_path / "vgg16-hscc-6x.int8-openvino.json"
    assert bundle.int8_graph("openvino", "xml") == tmp_path / "vgg16-hscc-6x.int8-openvino.xml"
    assert bundle.int8_graph("onnxruntime", "onnx", tag="ab12") == tmp_path / "vgg16-hscc-6x.int8-onnxruntime-ab12.onnx"
    assert bundle.layers_dir == tmp_path / "vgg16-hscc-6x_layers"
    other = ArtifactBundle.of(tmp_path / "model.bin")  # another name is its own stem
    assert other.evaluation == tmp_path / "model.bin.evaluation.json"
    registry = ArtifactBundle.for_registry_model(tmp_path, "vgg16-brain-mri", "0123456789abcdef")
    assert registry.int8_plan("openvino") == tmp_path / "vgg16-brain-mri-0123456789.int8-openvino.json"


def test_members_are_the_existing_files_of_one_model_only(tmp_path):
    bundle = ArtifactBundle.of(tmp_path / "m-6x.safetensors")
    assert bundle.members() == []
    for path in (bundle.artifact, bundle.report, bundle.evaluation, bundle.int8_plan("openvino"),
                 bundle.int8_graph("openvino", "xml"), bundle.int8_graph("openvino", "xml").with_suffix(".bin")):
        path.write_text("x")
    bundle.layers_dir.mkdir()
    neighbour = ArtifactBundle.of(tmp_path / "m-6x-fm.safetensors")  # a longer stem: another model
    neighbour.artifact.write_text("y")
    neighbour.evaluation.write_text("y")
    names = [p.name for p in bundle.members()]
    assert names == sorted(["m-6x.safetensors", "m-6x.json", "m-6x.evaluation.json", "m-6x.int8-openvino.json",
                            "m-6x.int8-openvino.xml", "m-6x.int8-openvino.bin", "m-6x_layers"])
    assert [p.name for p in neighbour.members()] == ["m-6x-fm.evaluation.json", "m-6x-fm.safetensors"]


def test_the_shipped_release_is_named_by_bundles():
    """Every file of the committed release belongs to the bundle of one of its models."""
    manifest = json.loads((RELEASE_DIR / MANIFEST).read_text())
    owned: set[str] = set()
    for entry in manifest["models"].values():
        owned |= {p.name for p in ArtifactBundle(RELEASE_DIR / entry["name"]).members()}
        if entry.get("file"):
            assert ArtifactBundle.of(RELEASE_DIR / entry["file"]).name == entry["name"]
    assert set(manifest["files"]) == owned


def test_a_deployable_keeps_its_plans_in_its_bundle(tmp_path):
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten())
    path = tmp_path / "tiny.safetensors"
    hscc_core.save(model, path, base="tiny")
    assert Deployable(model, path).plan_path("openvino") == ArtifactBundle.of(path).int8_plan("openvino")


def test_key_digest_ignores_entry_order_and_sees_every_value():
    a = key_digest({"model": "m", "config": {"budget": 6, "seed": 0}})
    assert a == key_digest({"config": {"seed": 0, "budget": 6}, "model": "m"})
    assert a != key_digest({"model": "m", "config": {"budget": 3, "seed": 0}})
    assert key_digest({"x": 1}, 10) == key_digest({"x": 1})[:10]


def test_files_identity_covers_names_order_and_bytes(tmp_path):
    one, two = tmp_path / "a.png", tmp_path / "b.png"
    one.write_bytes(b"\x01\x02")
    two.write_bytes(b"\x03")
    expected = hashlib.sha256(b"a.png\0\x01\x02\0b.png\0\x03\0").hexdigest()
    assert files_identity([one, two]) == expected
    assert files_identity([two, one]) != expected
    assert files_identity([one, two], names=["x/a.png", "y/b.png"]) != expected
    two.write_bytes(b"\x04")
    assert files_identity([one, two]) != expected


def test_weights_identity_is_the_arithmetic_not_the_report(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten())
    first, second = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    hscc_core.save(model, first, base="tiny", extra={"report": {"seconds": 1.0}})
    hscc_core.save(model, second, base="tiny", extra={"report": {"seconds": 2.0}})
    assert file_sha256(first) != file_sha256(second)  # the bytes differ (the report) ...
    assert weights_identity(first) == weights_identity(second)  # ... the arithmetic does not
    identity = module_identity(model)
    with torch.no_grad():
        model[0].bias[0] += 1e-3
    hscc_core.save(model, second, base="tiny")
    assert weights_identity(second) != weights_identity(first)
    assert module_identity(model) != identity


def test_no_module_spells_a_sidecar_name_itself():
    """The suffixes of an artifact's family are spelt in hscc_mri/bundle.py only."""
    spelt = []
    for path in sorted((ROOT / "hscc_mri").rglob("*.py")):
        if path.name == "bundle.py":
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#")[0]
            if any(s in code for s in ('".int8-', "'.int8-", '.int8-{', '"_layers"', '".evaluation.json"',
                                       '".target.json"')):
                spelt.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert spelt == []
