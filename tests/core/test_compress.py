"""The compressor: exactness at full rank, budgets, artifacts, ONNX."""
from __future__ import annotations

import itertools
import pickle

import numpy as np
import pytest
import torch
from torch import nn

import hscc_core
from hscc_mri.resolve import load_model, resolve_model, save_model
from hscc_core.compression import build_lowrank_module, compress, make_plans
from hscc_core import CompressionConfig
from hscc_core.factorize import pca_factors
from hscc_core.modules import grid_bounds
from hscc_core.stats import RegionMoments
from models import ModelSpec, build_model


class TinyNet(nn.Module):
    """A features/classifier model small enough for exhaustive geometry tests."""

    def __init__(self, conv: nn.Conv2d, size: tuple[int, int]) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, conv.in_channels, 3, padding=1), nn.ReLU(), conv, nn.ReLU())
        with torch.no_grad():
            n = self.features(torch.zeros(1, 3, *size)).numel()
        self.classifier = nn.Sequential(nn.Linear(n, 12), nn.ReLU(), nn.Linear(12, 4))
        self.spec = ModelSpec("tiny", input_size=size, channels=3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))


def _full_rank_module(model: nn.Module, name: str, regions: tuple[int, int], x: torch.Tensor) -> nn.Module:
    """Factor layer ``name`` by response PCA at full rank in every region."""
    plan = make_plans(model, [name], regions)[0]
    layer = model.get_submodule(name)
    acts = {}
    h = layer.register_forward_hook(lambda m, i, o: acts.__setitem__("y", o))
    with torch.no_grad():
        model(x)
    h.remove()
    stats = RegionMoments.empty(plan.out_dim, plan.rows, plan.cols)
    stats.update(acts["y"])
    w = layer.weight.detach().double().reshape(plan.out_dim, -1).numpy()
    b = layer.bias.detach().double().numpy()
    factors = [pca_factors(w, b, stats.mean(r), stats.covariance(r), plan.out_dim) for r in range(plan.num_regions)]
    return build_lowrank_module(plan, layer, factors)[0]


GEOMETRIES = [  # (kernel, stride, padding, dilation)
    (1, 1, 0, 1), (3, 1, 1, 1), (3, 2, 0, 2), (5, 2, 2, 1), (5, 1, 2, 2), (11, 4, 2, 1), (3, 4, 1, 1), (5, 4, 0, 2),
]


@pytest.mark.parametrize("kernel,stride,padding,dilation", GEOMETRIES)
@pytest.mark.parametrize("regions", [(1, 1), (2, 3), (3, 3)])
def test_full_rank_factors_reproduce_the_conv(kernel, stride, padding, dilation, regions):
    torch.manual_seed(0)
    conv = nn.Conv2d(5, 7, kernel, stride, padding, dilation)
    model = TinyNet(conv, (37, 41)).eval()
    x = torch.randn(3, 3, 37, 41)
    module = _full_rank_module(model, "features.2", regions, x)
    probe = torch.randn(2, 5, 37, 41)  # inputs unlike the calibration ones
    with torch.no_grad():
        assert (module(probe) - conv(probe)).abs().max() < 1e-4


def test_full_rank_factors_reproduce_a_linear_layer():
    torch.manual_seed(0)
    model = TinyNet(nn.Conv2d(3, 4, 3, padding=1), (9, 9)).eval()
    module = _full_rank_module(model, "classifier.0", (2, 2), torch.randn(40, 3, 9, 9))
    probe = torch.randn(5, model.classifier[0].in_features)
    with torch.no_grad():
        assert (module(probe) - model.classifier[0](probe)).abs().max() < 1e-4


def test_grid_regions_cover_uneven_maps():
    from hscc_core.modules import grid_bounds

    assert grid_bounds(13, 3) == [0, 4, 9, 13]
    with pytest.raises(ValueError):
        grid_bounds(2, 3)


def test_statistics_from_split_runs_add_up_to_the_single_run():
    torch.manual_seed(0)
    y, y_hat = torch.randn(6, 5, 11, 13), torch.randn(6, 5, 11, 13)
    whole = RegionMoments.empty(5, [0, 5, 11], [0, 7, 13], joint=True)
    whole.update(y, y_hat)
    a = RegionMoments.empty(5, [0, 5, 11], [0, 7, 13], joint=True)
    b = RegionMoments.empty(5, [0, 5, 11], [0, 7, 13], joint=True)
    a.update(y[:2], y_hat[:2])
    b.update(y[2:], y_hat[2:])
    total = a + b
    for field in ("n", "sum_y", "sum_yy", "sum_h", "sum_hh", "sum_yh"):
        # products are float32 per chunk, sums float64: equal to float32 rounding
        got, want = getattr(total, field), getattr(whole, field)
        assert float((got - want).abs().max()) <= 1e-6 * float(want.abs().max()) + 1e-12, field


def test_statistics_equal_float64_moments_of_each_region():
    torch.manual_seed(1)
    y, y_hat = torch.randn(3, 4, 9, 10) + 2.0, torch.randn(3, 4, 9, 10)
    rows, cols = [0, 4, 9], [0, 3, 10]
    m = RegionMoments.empty(4, rows, cols, joint=True)
    m.update(y, y_hat)
    for r, (i, j) in enumerate([(0, 0), (0, 1), (1, 0), (1, 1)]):
        pick = lambda t: t[:, :, rows[i]:rows[i + 1], cols[j]:cols[j + 1]].permute(0, 2, 3, 1).reshape(-1, 4).double()  # noqa: E731
        a, b = pick(y), pick(y_hat)
        assert int(m.n[r]) == a.shape[0]
        torch.testing.assert_close(m.sum_y[r], a.sum(0), rtol=1e-6, atol=1e-9)
        torch.testing.assert_close(m.sum_yy[r], a.T @ a, rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(m.sum_yh[r], a.T @ b, rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(m.sum_hh[r], b.T @ b, rtol=1e-6, atol=1e-6)
    flat = RegionMoments.empty(4, [0, 1], [0, 1])
    v = torch.randn(7, 4)
    flat.update(v)
    torch.testing.assert_close(flat.sum_yy[0], v.double().T @ v.double(), rtol=1e-6, atol=1e-6)
    assert int(flat.n[0]) == 7


def _calibration(spec: ModelSpec, n: int = 4, batch: int = 2) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return [torch.rand(batch, *spec.input_shape(1)[1:], generator=g) for _ in range(n // batch)]


@pytest.fixture(scope="module")
def alexnet():
    torch.manual_seed(0)
    return build_model("alexnet")


@pytest.mark.e2e
@pytest.mark.parametrize("budget", [3.0, 6.0])
@pytest.mark.parametrize("method", ["svd", "tucker", "hscc"])
def test_budget_is_met_within_two_percent_on_alexnet(alexnet, method, budget):
    config = CompressionConfig(method=method, budget=budget, regions=(2, 2) if method == "hscc" else (1, 1),
                               sequential=False)
    _, report = compress(alexnet, _calibration(alexnet.spec), config, progress=False)
    assert abs(report.flops_ratio / budget - 1) < 0.02, report.flops_ratio
    kept = [layer["flops_compressed"] for layer in report.layers]  # measured per layer
    assert all(0 < k < layer["flops_original"] for k, layer in zip(kept, report.layers))
    assert sum(kept) < report.flops_compressed


@pytest.mark.parametrize("budget", [3.0, 6.0])
@pytest.mark.parametrize("method", ["svd", "tucker", "hscc"])
def test_budget_is_met_within_two_percent_on_vgg16(vgg16, method, budget):
    config = CompressionConfig(method=method, budget=budget, regions=(2, 2) if method == "hscc" else (1, 1),
                               sequential=False)
    _, report = compress(vgg16, _calibration(vgg16.spec, 2), config, progress=False)
    assert abs(report.flops_ratio / budget - 1) < 0.02, report.flops_ratio


def test_sequential_refit_beats_plain_pca_on_the_calibration_data(alexnet):
    """Refit corrects the error that reaches each layer: closer final outputs."""
    cal = _calibration(alexnet.spec, 8, 4)
    x = torch.cat(cal)
    with torch.no_grad():
        ref = alexnet(x)
    errors = {}
    for seq in (False, True):
        config = CompressionConfig(budget=3.0, sequential=seq, include=("features.*",))  # convs: fast
        model, _ = compress(alexnet, cal, config, progress=False)
        with torch.no_grad():
            errors[seq] = float((model(x) - ref).norm() / ref.norm())
    assert errors[True] < errors[False]


@pytest.mark.e2e
def test_save_and_load_give_identical_outputs(alexnet, tmp_path):
    config = CompressionConfig(budget=4.0, regions=(2, 2), exclude=("classifier.4",))
    model, _ = compress(alexnet, _calibration(alexnet.spec), config, progress=False)
    path = save_model(model, tmp_path / "m.safetensors")
    loaded = load_model(path)
    x = torch.rand(2, 1, 128, 128)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))
    assert loaded.spec == alexnet.spec


class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_a_pickled_file_is_refused(tmp_path):
    bad = tmp_path / "evil.safetensors"
    with open(bad, "wb") as f:
        pickle.dump({"state": _Evil()}, f)
    torch_file = tmp_path / "evil.pt"
    torch.save({"state": _Evil()}, torch_file)
    for path in (bad, torch_file):
        with pytest.raises(hscc_core.ArtifactError, match="refused"):
            load_model(path)


def test_atomic_write_replaces_whole_files_with_a_plain_write_s_permissions(tmp_path):
    path = tmp_path / "deep" / "out.json"
    hscc_core.atomic_write(path, lambda tmp: tmp.write_text("one"))
    plain = tmp_path / "plain.json"
    plain.write_text("one")
    assert path.read_text() == "one" and path.stat().st_mode & 0o777 == plain.stat().st_mode & 0o777

    def crash(tmp):
        tmp.write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        hscc_core.atomic_write(path, crash)
    assert path.read_text() == "one" and sorted(p.name for p in path.parent.iterdir()) == ["out.json"]


@pytest.mark.parametrize("method", ["hscc", "svd", "tucker"])
def test_onnx_export_of_a_compressed_model_matches_onnxruntime(method, tmp_path):
    """Every compressed module type (spatial low-rank conv, low-rank conv/linear, Tucker-2)."""
    import onnxruntime as ort

    torch.manual_seed(0)
    tiny = TinyNet(nn.Conv2d(8, 16, 3, padding=1), (32, 32)).eval()
    config = CompressionConfig(method=method, budget=1.5, regions=(2, 2) if method == "hscc" else (1, 1),
                               include=("features.2", "classifier.0"))
    model, _ = compress(tiny, [torch.rand(4, 3, 32, 32)], config, progress=False)
    x = torch.rand(1, 3, 32, 32)
    path = tmp_path / "m.onnx"
    torch.onnx.export(model, (x,), str(path), input_names=["input"], output_names=["logits"], dynamo=False)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    out = session.run(None, {"input": x.numpy()})[0]
    with torch.no_grad():
        ref = model(x).numpy()
    assert np.abs(out - ref).max() < 1e-4 * max(1.0, np.abs(ref).max())


def test_config_validates_its_values():
    with pytest.raises(ValueError, match="method"):
        CompressionConfig(method="pruning")
    with pytest.raises(ValueError, match="exactly one"):
        CompressionConfig(budget=3.0, energy=0.9)
    with pytest.raises(ValueError, match="budget"):
        CompressionConfig(budget=0.5)
    with pytest.raises(ValueError, match="HSCC only"):
        CompressionConfig(method="svd", regions=(2, 2))


def test_library_errors_are_typed_and_still_value_errors():
    """Every error the library raises on purpose is an HSCCError of the kind that says where
    it comes from; the ones for bad arguments are also ValueErrors, as before."""
    tiny = TinyNet(nn.Conv2d(8, 16, 3, padding=1), (16, 16))
    bare = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())  # states no input size
    cases = [
        (hscc_core.ConfigError, "input size", lambda: hscc_core.count_flops(bare)),
        (hscc_core.ConfigError, "batch_sizes", lambda: hscc_core.bench_pair(tiny, tiny, batch_sizes=(0,))),
        (hscc_core.ConfigError, "already registered",
         lambda: hscc_core.register_module_type("SpatialLowRankConv2d", lambda config: nn.Identity())),
        (hscc_core.CompressionError, "match no layer", lambda: hscc_core.target_layers(tiny, include=("nothing.*",))),
        (hscc_core.CompressionError, "cannot cut", lambda: grid_bounds(4, 8)),
        (hscc_core.DistillationError, "epochs", lambda: hscc_core.FinetuneConfig(epochs=-1)),
        (hscc_core.DistillationError, "probability", lambda: hscc_core.ViewConfig(flip=2.0)),
    ]
    for kind, words, call in cases:
        with pytest.raises(kind, match=words) as caught:
            call()
        assert isinstance(caught.value, hscc_core.HSCCError) and isinstance(caught.value, ValueError)
