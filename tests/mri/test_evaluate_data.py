"""``hscc-mri evaluate --data DIR``: evaluation on a labelled real test set.

Real components throughout: the 32 real test scans of ``tests/fixtures/brain-mri-mini``
(8 per class), the registry AlexNet (random weights, 128x128 grey: fast) saved as the
"uncompressed" artifact, a real Global-SVD compression of it, and one end-to-end run of
the real VGG16 with the cached default SVD compression.
"""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from hscc_core import ArtifactError, report_path
from hscc_mri import cache
from hscc_mri.resolve import load_model, save_model, save_model_with_report
from hscc_mri.cli import main
from hscc_core.compression import compress
from hscc_core import CompressionConfig
from hscc_core.metrics import classification_report
from hscc_mri.report.analysis import paired_difference
from hscc_mri.testset import (bootstrap_indices, evaluate_models, evaluation_path, format_table, load_evaluation,
                               load_test_set)
from models import build_model

from tests.paths import ROOT

FIXTURE_ROOT = ROOT / "tests" / "fixtures" / "brain-mri-mini"
FIXTURE = FIXTURE_ROOT / "Testing"
CLASSES = ("glioma", "meningioma", "notumor", "pituitary")
SPELLINGS = {"glioma": "glioma_tumor", "meningioma": "Meningioma-Tumour", "notumor": "no_tumor",
             "pituitary": "pituitary tumor"}


@pytest.fixture(scope="module")
def alexnet_files(tmp_path_factory, fixture_set):
    """``(dense artifact, compressed artifact)``: the registry AlexNet with its last layer
    centred and scaled on the fixture (random features barely differ between scans; this
    way its predictions vary and some are confident, as a trained model's are), and a real
    Global-SVD compression of its conv layers at 2x (seconds, where the large fully
    connected layers would take a minute)."""
    folder = tmp_path_factory.mktemp("alexnet")
    torch.manual_seed(0)
    model = build_model("alexnet")
    inputs = fixture_set.inputs.float()
    with torch.no_grad():
        head = model.classifier[-1]
        head.bias.sub_(model(inputs).mean(0))
        scale = 3.0 / model(inputs).std()
        head.weight.mul_(scale)
        head.bias.mul_(scale)
    dense = save_model(model, folder / "alexnet-dense.safetensors")
    compressed, report = compress(model, None, CompressionConfig(method="svd", budget=2.0, include=("features.*",)),
                                  progress=False)
    cmp_path, _ = save_model_with_report(compressed, folder / "alexnet-svd-2x.safetensors", report.to_dict())
    return dense, cmp_path


@pytest.fixture(scope="module")
def fixture_set():
    return load_test_set(FIXTURE, build_model("alexnet").spec, progress=False)


def _copy_fixture(dest, rename=None):
    for cls in CLASSES:
        shutil.copytree(FIXTURE / cls, dest / (rename or {}).get(cls, cls))
    return dest


# ----------------------------------------------------------------------------- reading
def test_load_test_set_reads_every_scan_through_the_model_contract(fixture_set):
    ts = fixture_set
    assert len(ts) == 32 and ts.inputs.shape == (32, 1, 128, 128) and ts.inputs.dtype == torch.float16
    assert ts.class_counts() == dict.fromkeys(CLASSES, 8) and ts.skipped == []
    assert ts.files[0].startswith("glioma/") and ts.files[-1].startswith("pituitary/")
    assert (ts.folder, ts.dataset, ts.split) == ("Testing", "brain-mri-mini", "Testing") and len(ts.sha256) == 64
    # the same tensor as predict's path (load_scan -> scan_to_model_input), to float16 precision
    from preprocessing import load_scan, scan_to_model_input

    x = scan_to_model_input(load_scan(FIXTURE / ts.files[5]), build_model("alexnet").spec)
    torch.testing.assert_close(ts.inputs[5].float(), x, atol=2e-3, rtol=1e-3)


def test_root_with_testing_folder_reads_the_same_set(fixture_set):
    from_root = load_test_set(FIXTURE_ROOT, build_model("alexnet").spec, progress=False)
    assert from_root.folder == "brain-mri-mini"
    assert (from_root.files, from_root.sha256, from_root.split) == (fixture_set.files, fixture_set.sha256, "Testing")
    assert torch.equal(from_root.inputs, fixture_set.inputs)


def test_class_folder_spellings_are_accepted(tmp_path, fixture_set):
    _copy_fixture(tmp_path / "renamed" / "Test", SPELLINGS)
    spec = build_model("alexnet").spec
    for folder in (tmp_path / "renamed", tmp_path / "renamed" / "Test"):
        ts = load_test_set(folder, spec, progress=False)
        assert ts.class_counts() == dict.fromkeys(CLASSES, 8) and ts.split == "Test"
        assert torch.equal(ts.labels, fixture_set.labels) and torch.equal(ts.inputs, fixture_set.inputs)
        assert ts.files[0].startswith("glioma_tumor/")


def test_unreadable_file_is_skipped_and_reported(tmp_path, fixture_set, capsys):
    data = _copy_fixture(tmp_path / "Testing")
    (data / "meningioma" / "broken.jpg").write_bytes(b"")
    ts = load_test_set(data, build_model("alexnet").spec, progress=False)
    assert len(ts) == 32 and [s["file"] for s in ts.skipped] == ["meningioma/broken.jpg"]
    assert "empty" in ts.skipped[0]["reason"] and str(tmp_path) not in ts.skipped[0]["reason"]
    assert ts.sha256 != fixture_set.sha256  # the broken file is part of the set's identity
    assert main(["evaluate", "--data", str(data), "--model", "alexnet", "--methods", "--bootstrap", "50"]) == 0
    out = capsys.readouterr().out
    assert "1 skipped" in out and "meningioma/broken.jpg" in out


# ----------------------------------------------------------------------------- statistics
def test_bootstrap_resamples_are_paired_across_all_metrics():
    rng = np.random.default_rng(1)
    y, a, b = rng.integers(0, 4, 40), rng.integers(0, 4, 40), rng.integers(0, 4, 40)
    idx = bootstrap_indices(40, 300, seed=5)
    acc_a, acc_b = (a[idx] == y[idx]).mean(1), (b[idx] == y[idx]).mean(1)
    # classification_report and paired_difference draw these very replicates
    assert classification_report(y, a, CLASSES, 300, 5).accuracy_se == pytest.approx(np.std(acc_a, ddof=1))
    diff = paired_difference(y, a, b, 4, 300, 5)
    assert diff["accuracy"]["se"] == pytest.approx(np.std(acc_a - acc_b, ddof=1))
    # identical predictions: difference 0, SE 0
    same = paired_difference(y, a, a.copy(), 4, 300, 5)
    assert same["accuracy"] == {"diff": 0.0, "se": 0.0} and same["macro_f1"] == {"diff": 0.0, "se": 0.0}
    # known input: a right on both scans, b on one -> diff = share of resampled scan 1, SE sqrt(1/4 / 2)
    two = paired_difference(np.array([0, 1]), np.array([0, 1]), np.array([0, 0]), 2, 4000, 0)
    assert two["accuracy"]["diff"] == 0.5 and two["accuracy"]["se"] == pytest.approx(np.sqrt(0.125), rel=0.05)


def test_identical_candidate_has_zero_difference_and_full_agreement(fixture_set):
    ref = build_model("alexnet")
    res = evaluate_models(ref, {"same": ref}, fixture_set, n_bootstrap=100, progress=False, latency_repeats=1)
    same = res["rows"][1]
    assert same["agreement"] == 1.0 and same["agreement_se"] == 0.0 and same["mean_kl"] == pytest.approx(0, abs=1e-9)
    assert same["vs_reference"] == {"accuracy": {"diff": 0.0, "se": 0.0}, "macro_f1": {"diff": 0.0, "se": 0.0}}
    assert same["predicted"] == res["rows"][0]["predicted"]


# ----------------------------------------------------------------------------- library and CLI
def test_evaluate_models_and_table(alexnet_files, fixture_set):
    dense, cmp_path = alexnet_files
    ref, cmp_model = load_model(dense), load_model(cmp_path)
    res = evaluate_models(ref, {"svd 2x": cmp_model}, fixture_set, n_bootstrap=200, progress=False)
    json.dumps(res, allow_nan=False)  # JSON-ready: no NaN, no tensors
    assert [r["name"] for r in res["rows"]] == ["uncompressed", "svd 2x"]
    assert res["bootstrap"] == {"n": 200, "seed": 0, "paired": True} and res["test_set"]["n"] == 32
    table = format_table(res)
    lines = table.splitlines()
    assert "F1 men" in lines[1] and lines[3].startswith("uncompressed") and lines[4].startswith("svd 2x")
    assert "svd 2x - uncompressed: accuracy" in lines[5] and "(paired)" in lines[5]


def test_cli_data_mode_with_artifacts_writes_json_and_sidecar(alexnet_files, tmp_path, capsys):
    dense, cmp_path = alexnet_files
    out = tmp_path / "eval.json"
    rc = main(["evaluate", "--data", str(FIXTURE), "--model", str(dense), "--methods", "--artifacts", str(cmp_path),
               "--json", str(out), "--bootstrap", "200"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "uncompressed" in printed and "alexnet-svd-2x" in printed
    text = out.read_text()
    assert str(ROOT) not in text and str(tmp_path) not in text  # base names only
    res = json.loads(text)
    assert set(res) >= {"rows", "test_set", "bootstrap", "class_names", "latency", "model"}
    ref, row = res["rows"]
    assert (ref["name"], row["name"]) == ("uncompressed", "alexnet-svd-2x")
    ts = res["test_set"]
    assert (ts["folder"], ts["n"], ts["class_counts"], ts["skipped"]) == ("Testing", 32, dict.fromkeys(CLASSES, 8), [])
    assert len(ts["files"]) == len(ts["labels"]) == len(ref["predicted"]) == len(row["p_top"]) == 32
    # the reference against itself
    assert ref["agreement"] == 1.0 and ref["agreement_confident"] == 1.0
    assert ref["mean_kl"] == pytest.approx(0, abs=1e-9)
    assert ref["vs_reference"] is None
    assert 0 < ref["confident_share"] < 1  # the scaled head makes some, not all, scans confident
    for r in (ref, row):
        for key in ("accuracy", "macro_f1", "agreement", "confident_share"):
            assert 0.0 <= r[key] <= 1.0
        assert all(0.0 <= v <= 1.0 for v in r["f1"].values()) and set(r["f1"]) == set(CLASSES)
        assert r["mean_kl"] >= 0 and r["latency_ms"] > 0 and r["params"] > 0 and r["flops"] > 0
        assert all(0.25 - 1e-9 <= p <= 1.0 for p in r["p_top"])
        assert r["accuracy_se"] > 0 and r["macro_f1_se"] > 0 and r["confident_share_se"] > 0
        if 0 < r["accuracy"] < 1:
            assert all(v is None or v >= 0 for v in r["f1_se"].values())
    assert row["gflops"] == pytest.approx(ref["gflops"] / 2, rel=0.05)
    assert row["agreement"] < 1.0 and row["agreement_se"] > 0 and row["mean_kl"] > 0
    assert set(row["vs_reference"]) == {"accuracy", "macro_f1"} and row["vs_reference"]["accuracy"]["se"] >= 0
    assert row["vs_reference"]["accuracy"]["diff"] == pytest.approx(row["accuracy"] - ref["accuracy"])
    assert row["source"]["kind"] == "artifact" and row["source"]["report"]["flops_compressed"] > 0

    # the sidecar: this row, the reference row, the test set, the artifact's hash
    side = evaluation_path(cmp_path)
    assert side.name == "alexnet-svd-2x.evaluation.json" and side.is_file()
    assert not evaluation_path(dense).exists()  # the uncompressed model gets none
    doc = load_evaluation(cmp_path)
    assert doc is not None and doc["row"] == row and doc["reference"] == ref and doc["test_set"] == ts
    import hashlib

    assert doc["artifact_sha256"] == hashlib.sha256(cmp_path.read_bytes()).hexdigest()
    # the artifact changes: the measurement no longer applies to it
    changed = tmp_path / "changed.safetensors"
    shutil.copy(cmp_path, changed)
    shutil.copy(side, evaluation_path(changed))
    assert load_evaluation(changed) is not None
    with open(changed, "ab") as f:
        f.write(b"\0")
    assert load_evaluation(changed) is None
    assert load_evaluation(tmp_path / "missing.safetensors") is None


def test_cli_fidelity_targets_say_met_or_missed_and_set_the_exit_status(alexnet_files, tmp_path, capsys):
    """The targets are checked against the measured rows: one the compressed row cannot
    reach (agreement 1.0; its agreement is below, as the test above shows) gives status 1
    and the verdicts in the JSON with the measured values; a bar it clears is met."""
    from hscc_mri.fidelity_targets import FidelityTargets, check_targets, format_targets

    dense, cmp_path = alexnet_files
    out = tmp_path / "targets.json"
    assert main(["evaluate", "--data", str(FIXTURE), "--model", str(dense), "--methods", "--artifacts", str(cmp_path),
                 "--bootstrap", "50", "--target-agreement", "1.0", "--target-confident-agreement", "0.5",
                 "--json", str(out)]) == 1
    printed = capsys.readouterr().out
    assert "alexnet-svd-2x: agreement" in printed and "MISSED" in printed
    assert printed.rstrip().endswith("targets missed")
    res = json.loads(out.read_text())
    verdict = res["fidelity_targets"]["rows"]["alexnet-svd-2x"]
    row = res["rows"][1]
    assert verdict["agreement"] == {"measured": row["agreement"], "se": row["agreement_se"], "target": 1.0,
                                    "met": False}
    assert verdict["confident_agreement"]["measured"] == row["agreement_confident"]
    assert "accuracy_drop" not in verdict and verdict["met"] is False and res["fidelity_targets"]["met"] is False

    easy = check_targets(res, FidelityTargets(agreement=0.01, accuracy_drop=100.0))
    assert easy["met"] is True and set(easy["rows"]) == {"alexnet-svd-2x"}
    drop = easy["rows"]["alexnet-svd-2x"]["accuracy_drop"]
    assert drop["measured"] == pytest.approx(-100 * row["vs_reference"]["accuracy"]["diff"])
    text = format_targets(easy)
    assert "MISSED" not in text and text.endswith("all targets met")


def test_a_shipped_sidecar_is_never_rewritten(alexnet_files, tmp_path, capsys):
    """Evaluating a model inside a release folder leaves its shipped sidecar as the manifest
    checks it (rewriting it would make the release refuse the file); outside one the
    sidecar is written, as the test above shows."""
    from hscc_mri.release import FORMAT_VERSION, MANIFEST

    dense, cmp_path = alexnet_files
    shipped = tmp_path / "release"
    shipped.mkdir()
    model = shutil.copy(cmp_path, shipped / cmp_path.name)
    side = evaluation_path(model)
    side.write_text('{"shipped": true}')
    (shipped / MANIFEST).write_text(json.dumps({"format_version": FORMAT_VERSION,
                                                "files": {side.name: {"sha256": "0" * 64, "size": 17}}}))
    assert main(["evaluate", "--data", str(FIXTURE), "--model", str(dense), "--methods", "--bootstrap", "50",
                 "--artifacts", str(model)]) == 0
    err = capsys.readouterr().err
    assert side.read_text() == '{"shipped": true}' and f"kept {side}" in err and "shipped file" in err


@pytest.mark.parametrize("args, message", [
    (["--data", str(FIXTURE), "--target-agreement", "97"], "0.97 for 97%"),
    (["--data", str(FIXTURE), "--max-accuracy-drop", "-1"], "0 to 100 points"),
    (["--target-agreement", "0.97"], "need --data"),
])
def test_cli_refuses_fidelity_targets_it_cannot_check(args, message, capsys):
    assert main(["evaluate", "--model", "alexnet", "--methods"] + args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ") and message in err[-1]


@pytest.mark.parametrize("case", ["missing", "no-class-folders", "unknown-class-folder", "artifacts-without-data"])
def test_cli_errors_are_one_line_with_status_2(case, tmp_path, capsys):
    args = ["evaluate", "--model", "alexnet", "--methods"]
    if case == "missing":
        args += ["--data", str(tmp_path / "nowhere")]
    elif case == "no-class-folders":
        (tmp_path / "scans" / "misc").mkdir(parents=True)
        args += ["--data", str(tmp_path / "scans")]
    elif case == "unknown-class-folder":
        data = _copy_fixture(tmp_path / "Testing")
        (data / "astrocytoma").mkdir()
        args += ["--data", str(data)]
    else:
        args = ["evaluate", "--model", "alexnet", "--artifacts", str(tmp_path / "x.safetensors")]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ")
    expected = {"missing": "does not exist", "no-class-folders": "no class folders",
                "unknown-class-folder": "unknown class folder", "artifacts-without-data": "--artifacts needs --data"}
    assert expected[case] in err[-1]


def test_help_explains_both_modes(capsys):
    with pytest.raises(SystemExit) as done:
        main(["evaluate", "--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    for text in ("Test-set mode (--data DIR)", "Leave-one-scan-out mode", "--artifacts", "--cache-dir",
                 "--bootstrap", "--batch-size", "evaluation.json"):
        assert text in out


@pytest.mark.e2e
def test_cli_end_to_end_vgg16_with_cached_svd(tmp_path, capsys):
    """The real VGG16 and its default Global-SVD 6x compression (built once into the cache)."""
    out = tmp_path / "vgg.json"
    rc = main(["evaluate", "--data", str(FIXTURE), "--methods", "svd", "--budgets", "6",
               "--cache-dir", str(tmp_path / "cache"), "--json", str(out), "--bootstrap", "200"])
    assert rc == 0
    res = json.loads(out.read_text())
    ref, row = res["rows"]
    assert (ref["name"], row["name"], res["model"]) == ("uncompressed", "svd 6x", "vgg16-brain-mri")
    assert ref["accuracy"] >= 0.8 and ref["confident_share"] > 0.5  # the pretrained model knows these scans
    assert row["gflops"] == pytest.approx(ref["gflops"] / 6, rel=0.1)
    assert row["source"]["kind"] == "cache" and row["source"]["method"] == "svd"
    path = cache.cache_path("vgg16-brain-mri", "svd", 6, tmp_path / "cache")
    assert row["source"]["artifact"] == path.name
    doc = load_evaluation(path)
    assert doc is not None and doc["row"]["accuracy"] == row["accuracy"] and doc["reference"] == ref
    assert "svd 6x" in capsys.readouterr().out


@pytest.mark.e2e  # measures int8 plans and quantises with NNCF: minutes on 2 cores (220 s idle)
def test_cli_runtimes_add_one_row_per_model_and_choice(alexnet_files, tmp_path, capsys):
    """--runtimes: the reference and the artifact again in each runtime, agreement still
    against the reference in PyTorch fp32; fp32 in another runtime changes no answer."""
    dense, cmp_path = alexnet_files
    out = tmp_path / "eval.json"
    rc = main(["evaluate", "--data", str(FIXTURE), "--model", str(dense), "--methods", "--artifacts", str(cmp_path),
               "--runtimes", "openvino:fp32", "onnxruntime:int8", "--json", str(out), "--bootstrap", "50"])
    assert rc == 0
    rows = {r["name"]: r for r in json.loads(out.read_text())["rows"]}
    assert list(rows) == ["uncompressed", "alexnet-svd-2x", "uncompressed [openvino fp32]",
                          "alexnet-svd-2x [openvino fp32]", "uncompressed [onnxruntime int8]",
                          "alexnet-svd-2x [onnxruntime int8]"]
    assert rows["uncompressed"]["runtime"] == "torch" and rows["uncompressed"]["precision"] == "fp32"
    ov = rows["alexnet-svd-2x [openvino fp32]"]
    assert (ov["runtime"], ov["precision"]) == ("openvino", "fp32")
    assert ov["source"]["base_row"] == "alexnet-svd-2x"  # how bench --peers joins it
    from hscc_mri.peers import join_evaluation

    joined = join_evaluation("alexnet-svd-2x", "openvino", "fp32", rows.values())
    assert joined is not None and joined["accuracy"] == ov["accuracy"]
    assert ov["predicted"] == rows["alexnet-svd-2x"]["predicted"]  # same arithmetic, other runtime
    assert ov["flops"] == rows["alexnet-svd-2x"]["flops"] > 0  # counted on the PyTorch source
    assert rows["uncompressed [openvino fp32]"]["agreement"] == 1.0
    assert ov["agreement_same_runtime"] == ov["agreement"]  # the fp32 reference answers alike everywhere
    q = rows["alexnet-svd-2x [onnxruntime int8]"]
    same = [a == b for a, b in zip(q["predicted"], rows["uncompressed [onnxruntime int8]"]["predicted"])]
    assert q["agreement_same_runtime"] == pytest.approx(sum(same) / len(same))  # the pair the app shows
    assert "agreement_same_runtime" not in rows["uncompressed [onnxruntime int8]"]
    assert "in the same runtime and precision" in capsys.readouterr().out
    assert q["source"]["details"]["plan"]["check_images"] > 0  # the artifact's measured int8 plan
    assert q["source"]["details"]["method"] == "onnxruntime static QDQ"
    assert rows["uncompressed [onnxruntime int8]"]["source"]["details"]["plan"]["check_images"] > 0  # its own plan
    from hscc_mri.bundle import ArtifactBundle

    assert all(ArtifactBundle.of(p).int8_plan("onnxruntime").is_file() for p in (cmp_path, dense))


def test_cli_runtimes_refuses_what_this_cpu_cannot_run(alexnet_files, capsys):
    from hscc_mri.runtimes import has_native_bf16

    dense, _ = alexnet_files
    rc = main(["evaluate", "--data", str(FIXTURE), "--model", str(dense), "--runtimes",
               "onnxruntime:bf16" if has_native_bf16() else "openvino:bf16"])
    assert rc == 2 and "bf16" in capsys.readouterr().err
