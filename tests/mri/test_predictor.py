"""``hscc_mri.predictor``: the options of ``predict`` that do not go together, and a budget
the release lacks, are refused before any model is loaded, and the command says why."""
from __future__ import annotations

import pytest

from hscc_mri.errors import SettingsError
from hscc_mri.predictor import PredictRequest, load_predictor
from hscc_mri.release import RELEASE_DIR, load_release


@pytest.mark.parametrize("request_, words", [
    (PredictRequest(model="alexnet", uncompressed=True), "--model names the model itself"),
    (PredictRequest(model="alexnet", budget=6), "--model names the model itself"),
    (PredictRequest(uncompressed=True, budget=6), "--uncompressed and --budget exclude each other"),
    (PredictRequest(model="alexnet", safety_net=False), "--no-safety-net applies to the release's compressed"),
])
def test_options_that_do_not_go_together_are_refused(request_, words):
    with pytest.raises(SettingsError, match=words):
        load_predictor(request_)


def test_a_budget_the_release_lacks_names_the_budgets_it_has(capsys):
    from hscc_mri.cli import main

    budgets = ", ".join(f"{b:g}" for b in load_release(RELEASE_DIR).budgets())
    with pytest.raises(SettingsError, match=f"the release {RELEASE_DIR} has the budgets {budgets}"):
        load_predictor(PredictRequest(budget=97))
    assert main(["predict", "--budget", "97", "samples/none.jpg"]) == 2
    assert f"has the budgets {budgets} (--model builds any other)" in capsys.readouterr().err
