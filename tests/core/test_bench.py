"""FLOPs/parameter counting and the A-vs-B latency benchmark (``hscc_core bench``)."""
from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest
import torch
from torch import nn

from hscc_core.bench import BenchResult, LatencyStats, bench_pair
from hscc_core.flops import count_flops, count_params, flops_by_module
from models import ModelSpec, build_model

from tests.paths import ROOT

TINY_SPEC = ModelSpec("tiny", input_size=(16, 16), channels=1)


class _Tiny(nn.Module):
    """Conv(1->width, 3x3, pad 1) -> ReLU -> global average -> Linear(width->4)."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, width, kernel_size=3, padding=1)
        self.fc = nn.Linear(width, 4)
        self.spec = TINY_SPEC

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.conv(x)).mean((2, 3))
        return self.fc(x)


def _conv_out(size: int, k: int, stride: int = 1, pad: int = 0) -> int:
    return (size + 2 * pad - k) // stride + 1


def _alexnet_flops(size: int = 128) -> int:
    """2 * C_out * C_in * k^2 * H_out * W_out per conv, 2 * in * out per Linear, for
    ``models.alexnet`` (1 input channel, 4 classes); pools are free."""
    flops = 0
    s = _conv_out(size, 11, 4, 2)                      # conv1: 1 -> 64, 128 -> 31
    flops += 2 * 64 * 1 * 11 * 11 * s * s
    s = _conv_out(s, 3, 2)                             # max-pool: 15
    flops += 2 * 192 * 64 * 5 * 5 * s * s              # conv2 (pad 2 keeps 15)
    s = _conv_out(s, 3, 2)                             # max-pool: 7
    for c_in, c_out in ((192, 384), (384, 256), (256, 256)):
        flops += 2 * c_out * c_in * 3 * 3 * s * s      # conv3-5 (pad 1 keeps 7)
    flops += 2 * (256 * 6 * 6 * 4096 + 4096 * 4096 + 4096 * 4)
    return flops


def test_count_flops_of_a_hand_computable_model_ignores_bias_and_elementwise_ops():
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 8 * 8, 10))
    expected = 2 * 4 * 9 * 64 + 2 * (4 * 64) * 10
    assert count_flops(model, (1, 1, 8, 8)) == expected
    assert count_flops(model, (3, 1, 8, 8)) == 3 * expected     # linear in the batch
    model.train()
    count_flops(model, (1, 1, 8, 8))
    assert model.training                                       # mode restored


def test_count_flops_of_alexnet_matches_the_layer_formula():
    model = build_model("alexnet", pretrained=False)
    flops = count_flops(model)                                  # default: spec.input_shape(1)
    assert flops == _alexnet_flops() == 471_743_616
    assert 0.4e9 < flops < 0.55e9  # grey 128x128 input


def test_count_flops_needs_a_shape_without_spec():
    with pytest.raises(ValueError, match="input_shape"):
        count_flops(nn.Linear(3, 2))


def test_count_params_includes_buffers():
    model = nn.Linear(3, 2)
    model.register_buffer("scale", torch.ones(5))
    assert count_params(model) == 3 * 2 + 2 + 5
    assert count_params(nn.BatchNorm2d(8)) == 8 + 8 + 8 + 8 + 1  # weight, bias, mean, var, count


@pytest.mark.parametrize("make", [lambda: build_model("alexnet", pretrained=False), lambda: _Tiny(6)],
                         ids=["alexnet", "tiny"])
def test_flops_by_module_uses_named_module_paths_and_sums_to_the_total(make):
    model = make()
    per_module = flops_by_module(model)
    paths = dict(model.named_modules())
    assert per_module and set(per_module) <= set(paths)
    assert sum(per_module.values()) == count_flops(model)
    assert all(isinstance(paths[p], (nn.Conv2d, nn.Linear)) for p in per_module)


def test_flops_by_module_alexnet_layers():
    per_module = flops_by_module(build_model("alexnet", pretrained=False))
    assert list(per_module) == ["features.0", "features.3", "features.6", "features.8", "features.10",
                                "classifier.1", "classifier.4", "classifier.6"]
    assert per_module["features.0"] == 2 * 64 * 121 * 31 * 31
    assert per_module["classifier.6"] == 2 * 4096 * 4


def test_flops_by_module_puts_a_containers_own_ops_under_its_path():
    class Outer(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = nn.Linear(4, 4)
            self.w = nn.Parameter(torch.ones(4, 2))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.inner(x) @ self.w

    per_module = flops_by_module(Outer(), (1, 4))
    assert per_module == {"": 2 * 4 * 2, "inner": 2 * 4 * 4}


def test_bench_pair_on_tiny_models():
    a, b = _Tiny(8).train(), _Tiny(2).eval()
    threads = torch.get_num_threads()
    res = bench_pair(a, b, batch_sizes=(1, 2), runs=3, warmup=1, threads=1, progress=False,
                     name_a="tiny", name_b="tiny")
    assert isinstance(res, BenchResult) and res.batch_sizes == [1, 2]
    assert torch.get_num_threads() == threads and a.training and not b.training   # restored
    assert res.a.name == res.b.name == "tiny"
    assert res.flops_ratio == pytest.approx(count_flops(a) / count_flops(b))
    assert res.a.params == count_params(a) and res.threads == 1
    for m in (res.a, res.b):
        for n, stats in m.latency.items():
            assert isinstance(stats, LatencyStats) and stats.batch == n and stats.runs == 3
            assert 0 < stats.median_ms <= stats.p90_ms
    for n in res.batch_sizes:
        assert res.speedup[n] == pytest.approx(res.a.latency[n].median_ms / res.b.latency[n].median_ms)
        assert res.efficiency[n] == pytest.approx(res.speedup[n] / res.flops_ratio)
    d = json.loads(json.dumps(res.to_dict()))
    assert d["speedup"].keys() == {"1", "2"} and d["model_a"]["flops"] == count_flops(a)
    table = res.table()
    assert "A: tiny" in table and "batch 2: median ms" in table and "efficiency" in table


def test_bench_pair_takes_plain_models_and_an_input_shape():
    """The library needs no model spec: any two modules and the shape of one input."""
    a = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Flatten(), nn.LazyLinear(4))
    a(torch.zeros(1, 3, 16, 16))  # materialise the lazy layer
    b = nn.Sequential(nn.Conv2d(3, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(2 * 14 * 14, 4))
    res = bench_pair(a, b, input_shape=(3, 16, 16), batch_sizes=(1,), runs=2, warmup=0, progress=False)
    assert res.a.name == res.b.name == "Sequential"
    assert res.flops_ratio == pytest.approx(count_flops(a, (1, 3, 16, 16)) / count_flops(b, (1, 3, 16, 16)))
    with pytest.raises(ValueError, match="input_shape"):
        bench_pair(a, b, batch_sizes=(1,), runs=1, progress=False)


def test_bench_pair_channels_last_restores_the_memory_format():
    a, b = _Tiny(4), _Tiny(4)
    res = bench_pair(a, b, batch_sizes=(1,), runs=2, warmup=0, channels_last=True, progress=False)
    assert res.channels_last and a.conv.weight.is_contiguous()


def test_bench_pair_rejects_different_input_shapes_and_bad_arguments():
    other = _Tiny(4)
    other.spec = ModelSpec("tiny", input_size=(32, 32), channels=1)
    with pytest.raises(ValueError, match="different inputs"):
        bench_pair(_Tiny(4), other, runs=1, progress=False)
    with pytest.raises(ValueError, match="batch_sizes"):
        bench_pair(_Tiny(4), _Tiny(4), batch_sizes=(0,), progress=False)


def test_efficiency_is_undefined_when_b_has_no_flops():
    stats = {1: LatencyStats(1.0, 1.0, 1, 1)}
    from hscc_core.bench import ModelBench

    res = BenchResult(ModelBench("a", 10, 1, stats), ModelBench("b", 0, 1, stats), 1, False, "x")
    assert math.isinf(res.flops_ratio)
    assert res.to_dict()["flops_ratio"] is None and res.to_dict()["efficiency"] == {"1": None}


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hscc_mri", "bench", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def test_cli_bench_prints_json():
    proc = _cli("--model", "alexnet", "--vs", "alexnet", "--runs", "3", "--warmup", "1",
                "--batch-sizes", "1", "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["speedup"]["1"] > 0 and out["flops_ratio"] == 1.0
    assert out["model_a"]["flops"] == _alexnet_flops() and out["threads"] == 2


def test_cli_bench_refuses_a_missing_model_file(tmp_path):
    missing = tmp_path / "nope.safetensors"
    proc = _cli("--model", "alexnet", "--vs", str(missing), "--runs", "1")
    assert proc.returncode == 2
    assert "--vs" in proc.stderr and "nope.safetensors" in proc.stderr and "existing file" in proc.stderr
    assert not proc.stdout


def test_cli_bench_help_explains_the_measurements():
    proc = _cli("--help")
    assert proc.returncode == 0
    assert "speed-up" in proc.stdout and "efficiency" in proc.stdout and "median" in proc.stdout


def test_progress_bars_are_plain_lines_when_the_output_is_not_a_terminal():
    import io

    from hscc_core.progress import progress_bar

    log = io.StringIO()  # not a terminal
    for _ in progress_bar(range(5), desc="work", file=log, mininterval=0):
        pass
    text = log.getvalue()
    assert "\r" not in text and text.endswith("\n")
    assert "work" in text and "5/5" in text.splitlines()[-1]
    quiet = io.StringIO()
    for _ in progress_bar(range(3), desc="gone", file=quiet, leave=False, mininterval=0):
        pass
    assert "\r" not in quiet.getvalue()
