"""``compress --target-agreement``: the selection evaluator, the files, the command line."""
from __future__ import annotations

import json

import pytest
import torch

from hscc_core import CompressionConfig, compress_to_target
from hscc_mri.cli import main
from hscc_mri.resolve import load_model, save_model
from hscc_mri.target import SelectionEvaluator, check_select_folder, save_target_result, target_path
from hscc_mri.testset import load_test_set
from models import build_model
from tests.mri.test_cli import run_cli
from tests.paths import MINI_TESTING


@pytest.fixture(scope="module")
def alexnet_and_select():
    """The registry AlexNet (untrained: no weights ship) and the 32 mini-fixture scans."""
    model = build_model("alexnet").eval()
    return model, load_test_set(MINI_TESTING, model.spec, progress=False)


def test_selection_evaluator_measures_against_the_reference_and_the_files_hold_the_curve(alexnet_and_select,
                                                                                          tmp_path):
    model, select = alexnet_and_select
    evaluator = SelectionEvaluator(model, select)
    itself = evaluator(model)
    assert itself["agreement"] == 1.0 and itself["agreement_se"] == 0.0
    assert itself["accuracy"] == evaluator.reference_accuracy == float((evaluator.reference_answers ==
                                                                        select.labels).double().mean())
    config = CompressionConfig(method="svd", budget=2, include=("features.*",))
    result = compress_to_target(model, None, config, evaluator, 0.5, budgets=[2], progress=False)
    curve, written = save_target_result(result, evaluator, tmp_path / "m.safetensors")
    assert curve == target_path(tmp_path / "m.safetensors") == tmp_path / "m.target.json"
    saved = json.loads(curve.read_text())
    assert saved == written["target"] == json.loads((tmp_path / "m.json").read_text())["target"]
    assert saved["select"]["n"] == 32 and saved["select"]["folder"] == "Testing"
    assert saved["curve"][0]["budget"] == 2.0 and saved["curve"][0]["accuracy"] is not None
    assert saved["met"] == result.met and saved["reference_accuracy"] == evaluator.reference_accuracy
    reloaded = evaluator(load_model(tmp_path / "m.safetensors"))
    assert reloaded["agreement"] == result.trial.agreement and reloaded["accuracy"] == result.trial.accuracy


def test_the_report_half_is_refused(tmp_path):
    check_select_folder(tmp_path / "halves" / "select")
    for folder in (tmp_path / "halves" / "report", tmp_path / "halves" / "report" / "glioma"):
        with pytest.raises(ValueError, match="report half"):
            check_select_folder(folder)


@pytest.mark.parametrize("args,message", [
    (["--target-agreement", "1.2", "--select", str(MINI_TESTING)], "must be a share in (0, 1]"),
    (["--target-agreement", "0.97"], "needs --select DIR"),
    (["--select", str(MINI_TESTING)], "belong to --target-agreement"),
    (["--target-agreement", "0.97", "--select", str(MINI_TESTING), "--time-limit", "0"], "positive number"),
    (["--target-agreement", "0.97", "--select", str(MINI_TESTING), "--finetune-epochs", "1"], "distil the chosen"),
    (["--target-agreement", "0.97", "--select", "runs/halves/report"], "report half"),
    (["--target-agreement", "0.97", "--select", "no/such/folder"], "--select"),
])
def test_bad_target_options_are_one_line_errors(args, message, tmp_path, capsys):
    code = main(["compress", "--model", "alexnet", "--no-figures", "--out", str(tmp_path / "x.safetensors"), *args])
    err = capsys.readouterr().err
    assert code == 2 and message in err.strip().splitlines()[-1] and "Traceback" not in err
    assert not (tmp_path / "x.safetensors").exists()


def test_target_agreement_excludes_a_budget(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["compress", "--budget", "3", "--target-agreement", "0.97", "--select", str(MINI_TESTING),
              "--out", str(tmp_path / "x.safetensors")])
    assert e.value.code == 2 and "not allowed with argument" in capsys.readouterr().err


@pytest.mark.e2e
def test_compress_to_a_target_agreement_from_the_command_line(alexnet_and_select, tmp_path):
    """An AlexNet whose last bias is centred on the fixture scans (so its four answers are
    about equally frequent and a compression can change them) searched to 50% agreement
    (five trials), then to an unreachable 99% within one second: the best model found is
    kept, the command says it missed and exits 1. About 70 s on 2 shared cores."""
    _, select = alexnet_and_select
    model = build_model("alexnet").eval()
    with torch.no_grad():
        model.classifier[-1].bias -= model(select.inputs.float()).mean(0)
    reference = save_model(model, tmp_path / "alexnet-centred.safetensors")
    common = ["compress", "--model", str(reference), "--include", "features.*", "--calib", str(MINI_TESTING),
              "--calib-scans", "8", "--select", str(MINI_TESTING), "--no-figures"]
    out_path = tmp_path / "target.safetensors"
    run = run_cli(*common, "--target-agreement", "0.5", "--out", str(out_path))
    assert run.returncode == 0, run.stderr
    report = json.loads(out_path.with_suffix(".json").read_text())
    block = report["target"]
    assert block == json.loads((tmp_path / "target.target.json").read_text())
    assert block["met"] and block["stopped"] == "converged" and block["chosen"]["agreement"] >= 0.5
    assert report["config"]["budget"] == block["chosen"]["budget"] and report["calibration_images"] == 8
    missed = [c for c in block["curve"] if c["budget"] > block["chosen"]["budget"]]
    assert missed and not any(c["met"] for c in missed) and min(c["budget"] for c in missed) <= \
        block["chosen"]["budget"] * 1.1
    assert all(c["accuracy"] is not None and c["agreement_se"] is not None for c in block["curve"])
    assert run.stderr.count("trial ") >= len(block["curve"]) and "target agreement 50.0% met" in run.stdout
    chosen = SelectionEvaluator(load_model(reference), select)(load_model(out_path))
    assert chosen["agreement"] == block["chosen"]["agreement"]

    out_path = tmp_path / "missed.safetensors"
    run = run_cli(*common, "--target-agreement", "0.99", "--time-limit", "1", "--out", str(out_path))
    assert run.returncode == 1, run.stderr
    block = json.loads(out_path.with_suffix(".json").read_text())["target"]
    assert not block["met"] and block["stopped"] == "time limit" and len(block["curve"]) == 1
    assert "MISSED" in run.stdout and out_path.exists()
