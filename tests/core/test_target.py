"""compress_to_target: the search for the fewest-FLOPs model that meets a target agreement,
on a real tiny CNN (a compression takes well under a second)."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import hscc_core
import hscc_core.compression as compression
from hscc_core import CompressionConfig, CompressionError, calibration_statistics, compress, compress_to_target


class TinyNet(nn.Module):
    """Three convs and two linears on 3x12x12 inputs (a features/classifier model, so HSCC
    refits it sequentially)."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 32, 3, padding=1),
                                      nn.ReLU(), nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(4))
        self.classifier = nn.Sequential(nn.Linear(512, 32), nn.ReLU(), nn.Linear(32, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))


def _smooth(n: int, g: torch.Generator) -> torch.Tensor:
    """Smooth images (3x3 noise upsampled): their responses have decaying spectra, as real ones do."""
    return nn.functional.interpolate(torch.randn(n, 3, 3, 3, generator=g), size=(12, 12), mode="bilinear",
                                     align_corners=False)


@pytest.fixture(scope="module")
def setup():
    """The model, its calibration batches and an evaluate() on 400 selection inputs.

    The last bias is centred on the calibration logits so that the four answers are about
    equally frequent (a random CNN otherwise answers one class almost always, and any
    compression would agree with it). Measured agreement with the original: 79% at 1.5x,
    67% at 2x, 55% at 3x, 49% at 6x."""
    torch.manual_seed(0)
    model = TinyNet().eval()
    g = torch.Generator().manual_seed(1)
    calibration = [_smooth(32, g) for _ in range(2)]
    select = _smooth(400, g)
    with torch.no_grad():
        model.classifier[-1].bias -= model(torch.cat(calibration)).mean(0)
        reference = model(select).argmax(1)

    def evaluate(compressed: nn.Module) -> dict[str, float]:
        with torch.no_grad():
            a = float((compressed(select).argmax(1) == reference).float().mean())
        return {"agreement": a, "agreement_se": math.sqrt(a * (1 - a) / len(select))}

    assert min(torch.bincount(reference, minlength=4)) > 50
    return model, calibration, evaluate


def test_search_returns_the_fewest_flops_model_that_meets_the_target(setup):
    model, calibration, evaluate = setup
    lines = []
    result = compress_to_target(model, calibration, CompressionConfig(budget=6), evaluate, 0.6, progress=False,
                                log=lines.append)
    chosen = result.trial
    assert result.met and chosen.met and chosen.agreement >= 0.6 and result.stopped == "converged"
    # the model returned is the one measured, at the budget recorded
    assert evaluate(result.model)["agreement"] == chosen.agreement
    assert result.report.config["budget"] == chosen.budget and result.report.flops_ratio == chosen.flops_ratio
    # one step further misses: the lowest missing budget above it is within the tolerance
    above = [t for t in result.trials if t.budget > chosen.budget]
    assert above and not any(t.met for t in above)
    assert min(t.budget for t in above) / chosen.budget <= 1.1
    # no trial with fewer FLOPs met the target
    assert all(not t.met for t in result.trials if t.flops_compressed < chosen.flops_compressed)
    # the ladder started at the config's budget and went down by halves until one met
    assert [t.budget for t in result.trials[:3]] == [6.0, 3.0, 1.5]
    assert len(lines) == len(result.trials) + 1 and lines[0].startswith("calibration statistics")
    curve = result.to_dict()["curve"]
    assert [c["budget"] for c in curve] == sorted(t.budget for t in result.trials)
    assert result.to_dict()["met"] is True and "met" in result.summary()
    assert result.table().count("\n") == len(result.trials) + 1


def test_statistics_are_collected_once_and_reusing_them_is_bit_identical(setup, monkeypatch):
    model, calibration, evaluate = setup
    calls = []
    collect = compression.collect_statistics

    def counted(*args, **kwargs):
        calls.append(1)
        return collect(*args, **kwargs)

    monkeypatch.setattr(compression, "collect_statistics", counted)
    result = compress_to_target(model, calibration, CompressionConfig(budget=6, regions=(2, 2)), evaluate, 0.6,
                                budgets=[2, 4, 6], progress=False)
    assert len(calls) == 1 and len(result.trials) == 3 and result.stopped == "budgets"
    assert result.search["statistics_reused"] is True

    for config in (CompressionConfig(budget=3), CompressionConfig(budget=4, regions=(2, 2), clusters=2)):
        stats = calibration_statistics(model, calibration, config, progress=False)
        fresh, fresh_report = compress(model, calibration, config, progress=False)
        reused, reused_report = compress(model, calibration, config, progress=False, statistics=stats)
        a, b = fresh.state_dict(), reused.state_dict()
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
        assert fresh_report.layers == reused_report.layers
        assert fresh.hscc_replacements == reused.hscc_replacements
    with pytest.raises(CompressionError, match="region grid"):
        compress(model, calibration, CompressionConfig(budget=3, regions=(2, 2)), progress=False,
                 statistics=calibration_statistics(model, calibration, CompressionConfig(budget=3), progress=False))
    with pytest.raises(CompressionError, match="calibration images"):
        compress(model, calibration[:1], CompressionConfig(budget=3), progress=False,
                 statistics=calibration_statistics(model, calibration, CompressionConfig(budget=3), progress=False))


def test_time_limit_keeps_the_best_found_and_says_the_target_was_missed(setup):
    model, calibration, evaluate = setup
    result = compress_to_target(model, calibration, CompressionConfig(budget=6), evaluate, 0.99, time_limit_s=0,
                                progress=False)
    assert len(result.trials) == 1 and result.stopped == "time limit"  # the first trial always runs
    assert not result.met and "MISSED" in result.summary() and result.to_dict()["met"] is False
    # when nothing meets the target, the best found is the highest agreement
    result = compress_to_target(model, calibration, CompressionConfig(budget=6), evaluate, 0.99, progress=False)
    assert not result.met and result.stopped == "min budget"
    assert [t.budget for t in result.trials] == [6.0, 3.0, 1.5, 1.25]
    assert result.trial.agreement == max(t.agreement for t in result.trials)
    assert evaluate(result.model)["agreement"] == result.trial.agreement


def test_bad_settings_are_typed_errors(setup):
    model, calibration, evaluate = setup
    config = CompressionConfig(budget=4)
    with pytest.raises(CompressionError, match="target agreement"):
        compress_to_target(model, calibration, config, evaluate, 1.5)
    with pytest.raises(CompressionError, match="not energy"):
        compress_to_target(model, calibration, CompressionConfig(budget=None, energy=0.9), evaluate, 0.9)
    with pytest.raises(CompressionError, match="must return 'agreement'"):
        compress_to_target(model, calibration, config, lambda m: {"accuracy": 0.5}, 0.9, progress=False)
    with pytest.raises(CompressionError, match="calibration images"):
        compress_to_target(model, None, config, evaluate, 0.9)
    # weights-only methods search too, without statistics
    result = compress_to_target(model, None, CompressionConfig(method="svd", budget=2), evaluate, 0.5,
                                budgets=[2], progress=False, input_shape=(1, 3, 12, 12))
    assert result.search["statistics_reused"] is False and result.trial.budget == 2.0
    assert isinstance(result, hscc_core.TargetResult)
