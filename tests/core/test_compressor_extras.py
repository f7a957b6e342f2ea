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
from hscc_mri.resolve import load_model, resolve_model, save_model
from hscc_core.allocate import LayerPlan, greedy_ranks
from hscc_core.compression import compress
from hscc_core import CompressionConfig
from hscc_mri.loso import compare_on, format_folds, leave_one_scan_out
from hscc_mri.figures import layer_figures, region_kept_shares
from hscc_core.finetune import FinetuneConfig, distill, distillation_loss
from hscc_core.timing import optimize_for_inference, time_forward
from models import ModelSpec

ROOT = Path(__file__).resolve().parents[2]


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


def test_cluster_factors_at_full_cluster_rank_reproduce_the_layer():
    """Shared rank 0 and every cluster at full rank: the clusters alone rebuild the conv."""
    from hscc_core.compression import build_lowrank_module, make_plans
    from hscc_core.factorize import co_activation_clusters, hierarchical_factors
    from hscc_core.stats import RegionMoments

    torch.manual_seed(0)
    model = SmallNet().eval()
    x = torch.rand(6, 3, 24, 24)
    for regions in ((1, 1), (2, 2)):
        plan = make_plans(model, ["features.2"], regions)[0]
        layer = model.get_submodule("features.2")
        acts = {}
        h = layer.register_forward_hook(lambda m, i, o: acts.__setitem__("y", o))
        with torch.no_grad():
            ref = model(x)
        h.remove()
        stats = RegionMoments.empty(plan.out_dim, plan.rows, plan.cols)
        stats.update(acts["y"])
        w = layer.weight.detach().double().reshape(plan.out_dim, -1).numpy()
        b = layer.bias.detach().double().numpy()
        plan.clusters = [co_activation_clusters(stats.covariance(r), 4) for r in range(plan.num_regions)]
        plan.cluster_ranks = [[len(c) for c in reg] for reg in plan.clusters]
        assert all(sorted(sum(reg, [])) == list(range(48)) for reg in plan.clusters)  # a partition
        eye = np.eye(plan.out_dim)
        factors = [hierarchical_factors(w, b, eye, stats.covariance(r), stats.mean(r), stats.mean(r), 0,
                                        plan.clusters[r], plan.cluster_ranks[r]) for r in range(plan.num_regions)]
        module, record = build_lowrank_module(plan, layer, factors)
        assert "clusters" in record["config"]
        with torch.no_grad():
            torch.testing.assert_close(module(acts_in := model.features[:2](x)), layer(acts_in), atol=1e-4, rtol=0)


def test_silent_channels_join_no_cluster():
    from hscc_core.factorize import co_activation_clusters

    rng = np.random.default_rng(0)
    y = rng.normal(size=(500, 6))
    y[:, 2] = 3.0  # constant channel
    clusters = co_activation_clusters(np.cov(y.T), 3)
    assert 2 not in sum(clusters, []) and sorted(sum(clusters, [])) == [0, 1, 3, 4, 5]


@pytest.mark.parametrize("regions", [(1, 1), (2, 2)])
def test_clustered_compression_meets_the_budget_and_round_trips(small, regions, tmp_path):
    compressed, report = compress(small, _batches(), CompressionConfig(budget=3.0, regions=regions, clusters=4,
                                                                         rank_multiple=1), progress=False)
    assert abs(report.flops_ratio / 3.0 - 1) < 0.05
    assert any("cluster_ranks" in layer for layer in report.layers)
    # rebuild every replaced module from its JSON config, as load() does, and reload the tensors
    import copy

    from hscc_core import MODULE_TYPES, replace_submodule

    rebuilt = copy.deepcopy(small)
    for rec in compressed.hscc_replacements:
        replace_submodule(rebuilt, rec["path"], MODULE_TYPES[rec["type"]](json.loads(json.dumps(rec["config"]))))
    rebuilt.load_state_dict(compressed.state_dict())
    x = torch.rand(2, 3, 24, 24)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(x), compressed(x))


def test_forced_cluster_units_run_and_count_their_flops(small):
    """Give every conv region cluster units by hand; FLOPs must follow D + |g|, not D + O."""
    from hscc_core.flops import count_flops

    compressed, report = compress(small, _batches(), CompressionConfig(budget=2.0, clusters=3, rank_multiple=1),
                                  progress=False)
    for layer in report.layers:
        if "cluster_ranks" in layer:
            assert len(layer["cluster_sizes"][0]) <= 3
    assert count_flops(compressed) == report.flops_compressed


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


def test_distillation_keeps_dropout_off(small):
    """The deployable AlexNet keeps torchvision's Dropout(0.5) layers but trains without
    dropout: distillation must not switch them on."""
    compressed, _ = compress(small, None, CompressionConfig(method="svd", budget=4.0), progress=False)
    student = nn.Sequential(compressed, nn.Dropout(p=0.5))
    seen: list[bool] = []
    student[1].register_forward_hook(lambda m, i, o: seen.append(m.training))
    distill(student, small, _batches(n=4, size=8, seed=3), FinetuneConfig(epochs=1, batch_size=8), progress=False)
    assert seen and not any(seen)


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


def test_format_folds_prints_the_totals_and_one_line_per_held_out_scan():
    folds = [{"file": "a.jpg", "label_reference": "glioma", "label_compressed": "glioma", "kl": 0.001, "agree": True,
              "views_agreement": 1.0},
             {"file": "b.jpg", "label_reference": "meningioma", "label_compressed": "notumor", "kl": 0.0236,
              "agree": False, "views_agreement": 0.5}]
    res = {"config": {"method": "hscc", "budget": 6.0, "regions": [2, 2], "clusters": 3}, "scans": 2,
           "agreement_count": 1, "mean_kl": 0.0123, "views_agreement": 0.75, "views_mean_kl": 0.5, "seconds": 12.4,
           "folds": folds}
    lines = format_folds(res).splitlines()
    assert lines[0] == ("hscc 6x 2x2 K3: held-out scans agree 1/2, mean KL 0.0123; held-out views agree 75.0%, "
                        "mean KL 0.5000 (12 s)")
    assert lines[1].split() == ["ok", "a.jpg", "glioma", "->", "glioma", "KL", "0.0010", "views", "100%"]
    assert lines[2].split() == ["DIFF", "b.jpg", "meningioma", "->", "notumor", "KL", "0.0236", "views", "50%"]
    svd = format_folds({**res, "config": {"method": "svd", "budget": None, "energy": 0.9}})
    assert svd.startswith("svd energy 0.9: held-out scans agree 1/2")


def test_channels_last_inference_matches_contiguous(small):
    x = torch.rand(1, 3, 24, 24)
    ref, _ = time_forward(small, x, repeats=1)
    fast = optimize_for_inference(SmallNet().eval())
    fast.load_state_dict(small.state_dict())
    out, ms = time_forward(fast, x, repeats=1)
    assert torch.allclose(out, ref, atol=1e-5) and ms > 0


@pytest.mark.e2e
def test_bench_loads_compressed_artifacts_in_a_fresh_process(tmp_path):
    """Regression: module types must be registered when only ``bench`` imports the package."""
    model = resolve_model("alexnet")
    compressed, _ = compress(model, None, CompressionConfig(method="svd", budget=3.0), progress=False)
    path = save_model(compressed, tmp_path / "a.safetensors")
    out = subprocess.run([sys.executable, "-m", "hscc_mri", "bench", "--model", "alexnet", "--vs", str(path),
                          "--batch-sizes", "1", "--runs", "2", "--warmup", "0", "--json"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout)["flops_ratio"] == pytest.approx(3.0, rel=0.02)


@pytest.mark.parametrize("spatial", [False, True])
def test_cluster_heads_export_to_onnx(spatial, tmp_path):
    """Conv modules with cluster heads (shared rank 0 in one region) run in onnxruntime."""
    import onnxruntime as ort

    from hscc_core.modules import LowRankConv2d, SpatialLowRankConv2d

    torch.manual_seed(0)
    geom = {"in_channels": 6, "out_channels": 10, "kernel_size": [3, 3], "stride": [1, 1], "padding": [1, 1],
            "dilation": [1, 1]}
    clusters = [{"channels": [0, 3, 4], "rank": 2}, {"channels": [1, 2, 5, 6], "rank": 0},
                {"channels": [7, 8], "rank": 1}]
    if spatial:
        mod = SpatialLowRankConv2d({**geom, "rows": [0, 5, 12], "cols": [0, 12], "out_size": [12, 12],
                                    "ranks": [4, 0], "clusters": [clusters, clusters]})
    else:
        mod = LowRankConv2d({**geom, "rank": 4, "clusters": clusters})
    with torch.no_grad():
        for p in mod.parameters():
            p.normal_()
    mod.eval()
    x = torch.rand(1, 6, 12, 12)
    path = tmp_path / "c.onnx"
    torch.onnx.export(mod, (x,), str(path), input_names=["x"], output_names=["y"], dynamo=False)
    out = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x.numpy()})[0]
    with torch.no_grad():
        ref = mod(x).numpy()
    assert np.abs(out - ref).max() < 1e-4 * max(1.0, np.abs(ref).max())
    # channels in no active cluster get only the shared part (9: in no cluster at all)
    assert out.shape == (1, 10, 12, 12)
