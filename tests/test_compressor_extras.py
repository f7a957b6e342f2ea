"""Rank rounding, allocation modes, distillation, layer figures, leave-one-scan-out and
inference layout: the compressor's parts around the core factorisation."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import hscc_core
from hscc_core.allocate import LayerPlan, greedy_ranks
from hscc_core.compress import compress
from hscc_core.config import CompressionConfig
from hscc_core.evaluate import compare_on, leave_one_scan_out
from hscc_core.figures import layer_figures, region_kept_shares
from hscc_core.finetune import FinetuneConfig, distill, distillation_loss
from hscc_core.inference import optimize_for_inference, time_forward
from models import ModelSpec

ROOT = Path(__file__).resolve().parents[1]


class SmallNet(nn.Module):
    """Two convs and two linears on 3x24x24 inputs: fast enough to compress in a test."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 48, 3, padding=1),
                                      nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(48, 64, 3, padding=1), nn.ReLU(),
                                      nn.AdaptiveAvgPool2d(4))
        self.classifier = nn.Sequential(nn.Linear(64 * 16, 96), nn.ReLU(), nn.Linear(96, 4))
        self.spec = ModelSpec("small", input_size=(24, 24), channels=3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))


@pytest.fixture(scope="module")
def small():
    torch.manual_seed(0)
    return SmallNet().eval()


def _batches(n: int = 4, size: int = 8, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.rand(size, 3, 24, 24, generator=g) for _ in range(n)]


def _plan(name: str, d: int, o: int, areas: list[int]) -> LayerPlan:
    return LayerPlan(name, "conv", d, o, [0, len(areas)], [0, 1], areas, 2 * o * d * sum(areas))


def test_rank_rounding_gives_multiples_and_keeps_region_prefixes():
    rng = np.random.default_rng(0)
    plans = [_plan("a", 1152, 256, [100, 100]), _plan("b", 2304, 256, [25]), _plan("small", 288, 32, [100])]
    spectra = [[np.sort(rng.random(p.max_rank))[::-1] * 10 for _ in p.areas] for p in plans]
    target = 0.3 * sum(p.flops_original for p in plans)
    greedy_ranks(plans, spectra, target, rank_multiple=16)
    for p in plans[:2]:
        for d in p.ranks:
            assert d % 16 == 0 or d == p.max_rank, (p.name, p.ranks, p.max_rank)
    assert plans[2].max_rank < 64 and plans[2].ranks[0] > 0  # too small for blocks: single units
    assert sum(p.flops() for p in plans) <= target


def test_rank_multiple_is_charged_to_the_budget(small):
    for multiple in (1, 16):
        _, report = compress(small, _batches(), CompressionConfig(budget=3.0, rank_multiple=multiple), progress=False)
        assert abs(report.flops_ratio / 3.0 - 1) < 0.05, (multiple, report.flops_ratio)


def test_uniform_allocation_gives_one_ratio_per_layer(small):
    _, report = compress(small, _batches(), CompressionConfig(budget=3.0, allocation="uniform"), progress=False)
    assert all(len(set(layer["ranks"])) == 1 for layer in report.layers)
    with pytest.raises(ValueError, match="allocation"):
        CompressionConfig(allocation="best")


def test_clusters_are_refused_until_implemented():
    with pytest.raises(ValueError, match="clusters"):
        CompressionConfig(clusters=4)


def test_distillation_brings_the_compressed_model_closer_to_the_original(small):
    compressed, _ = compress(small, None, CompressionConfig(method="svd", budget=4.0), progress=False)
    data = _batches(n=8, size=16, seed=1)
    record = distill(compressed, small, data, FinetuneConfig(epochs=4, lr=3e-3, batch_size=16), progress=False)
    assert record["val_loss_after"] <= record["val_loss_before"]
    assert record["epochs_run"] >= 1 and 0 <= record["best_epoch"] <= record["epochs_run"]
    # the kept weights are the best-on-validation ones: recomputing the loss agrees
    val = torch.cat(data)[:]
    with torch.no_grad():
        loss = distillation_loss(compressed(val), small(val), 4.0)
    assert torch.isfinite(loss)


def test_distillation_uses_labels_when_given(small):
    compressed, _ = compress(small, None, CompressionConfig(method="svd", budget=4.0), progress=False)
    g = torch.Generator().manual_seed(2)
    data = [(x, torch.randint(0, 4, (len(x),), generator=g)) for x in _batches(n=4, size=8, seed=2)]
    record = distill(compressed, small, data, FinetuneConfig(epochs=1, batch_size=8), progress=False)
    assert record["labels"] is True


def test_layer_figures_colour_regions_by_kept_compute(small, tmp_path):
    _, report = compress(small, _batches(), CompressionConfig(budget=3.0, regions=(2, 2), rank_multiple=1),
                         progress=False)
    paths = layer_figures(report.to_dict(), tmp_path)
    assert len(paths) == len(report.layers)
    for p in paths:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    conv = next(layer for layer in report.to_dict()["layers"] if layer["kind"] == "conv")
    shares = region_kept_shares(conv)
    assert shares.shape == (2, 2)
    expected = conv["ranks"][0] * (conv["in_dim"] + conv["out_dim"]) / (conv["in_dim"] * conv["out_dim"])
    assert shares[0, 0] == pytest.approx(expected)


def test_compare_on_identical_models_agrees_fully(small):
    res = compare_on(small, small, _batches(n=2))
    assert res["agreement"] == 1.0 and res["mean_kl"] == pytest.approx(0.0, abs=1e-9)


def test_leave_one_scan_out_holds_each_scan_out(small):
    samples = sorted((ROOT / "samples").glob("*.jpg"))[:3]
    cfg = CompressionConfig(budget=2.0, rank_multiple=1)
    res = leave_one_scan_out(small, cfg, samples, views=2, phantoms=2, test_views=2, progress=False)
    assert [f["file"] for f in res["folds"]] == [p.name for p in samples]
    assert res["scans"] == 3 and 0 <= res["agreement_count"] <= 3
    assert res["mean_kl"] >= 0 and 0 <= res["views_agreement"] <= 1
    json.dumps(res)  # JSON-able


def test_channels_last_inference_matches_contiguous(small):
    x = torch.rand(1, 3, 24, 24)
    ref, _ = time_forward(small, x, repeats=1)
    fast = optimize_for_inference(SmallNet().eval())
    fast.load_state_dict(small.state_dict())
    out, ms = time_forward(fast, x, repeats=1)
    assert torch.allclose(out, ref, atol=1e-5) and ms > 0


def test_bench_loads_compressed_artifacts_in_a_fresh_process(tmp_path):
    """Regression: module types must be registered when only ``bench`` imports the package."""
    model = hscc_core.resolve_model("alexnet")
    compressed, _ = compress(model, None, CompressionConfig(method="svd", budget=3.0), progress=False)
    path = hscc_core.save(compressed, tmp_path / "a.safetensors")
    out = subprocess.run([sys.executable, "-m", "hscc_core", "bench", "--model", "alexnet", "--vs", str(path),
                          "--batch-sizes", "1", "--runs", "2", "--warmup", "0", "--json"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout)["flops_ratio"] == pytest.approx(3.0, rel=0.02)
