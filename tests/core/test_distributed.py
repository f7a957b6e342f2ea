"""Calibration split across processes: the all-reduced statistics are the whole set's.

Two real processes on loopback (Gloo), each given half of the calibration batches.
"""
from __future__ import annotations

import copy
from pathlib import Path

import torch
from torch import nn

from hscc_core import CompressionConfig, compress
from hscc_core.compression import collect_statistics, make_plans
from hscc_core.distributed import is_distributed, world_size
from tests.multiproc import run_processes


class _Net(nn.Module):
    """features/classifier layout, as the sequential refit walks it."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 24, 3, padding=1),
                                      nn.ReLU(), nn.AdaptiveAvgPool2d(4))
        self.classifier = nn.Sequential(nn.Linear(24 * 16, 32), nn.ReLU(), nn.Linear(32, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))


def _net() -> nn.Module:
    torch.manual_seed(0)
    return _Net().eval()


def _batches() -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return [torch.rand(5, 3, 12, 12, generator=g) for _ in range(4)]


_CONFIG = CompressionConfig(method="hscc", budget=2.0, regions=(2, 2), clusters=2, seed=0)


def _statistics(model: nn.Module, batches: list[torch.Tensor]) -> list:
    names = ["features.0", "features.2", "classifier.0"]
    return collect_statistics(model, batches, make_plans(model, names, (2, 2), (1, 3, 12, 12)), progress=False)


def _worker(rank: int, world: int, out: str) -> None:
    assert is_distributed() and world_size() == world
    model = _net()
    share = _batches()[rank::world]
    stats = _statistics(model, share)
    compressed, report = compress(model, share, _CONFIG, progress=False)
    if rank == 0:
        torch.save({"stats": [(s.n, s.sum_y, s.sum_yy) for s in stats], "state": compressed.state_dict(),
                    "images": report.calibration_images}, out)


def test_statistics_and_compression_split_over_two_processes_equal_one_process(tmp_path: Path):
    out = tmp_path / "rank0.pt"
    run_processes(_worker, str(out))
    got = torch.load(out, weights_only=True)
    model, batches = _net(), _batches()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in the workers: float32 forwards then agree to rounding
    try:
        _compare(got, model, batches)
    finally:
        torch.set_num_threads(threads)


def _compare(got: dict, model: nn.Module, batches: list[torch.Tensor]) -> None:
    for (n, sum_y, sum_yy), want in zip(got["stats"], _statistics(model, batches), strict=True):
        assert torch.equal(n, want.n)
        torch.testing.assert_close(sum_y, want.sum_y, rtol=1e-9, atol=1e-9)
        torch.testing.assert_close(sum_yy, want.sum_yy, rtol=1e-9, atol=1e-9)
    compressed, report = compress(model, batches, _CONFIG, progress=False)
    assert got["images"] == report.calibration_images == 20
    x = torch.rand(3, 3, 12, 12)
    split_compressed = copy.deepcopy(compressed)  # same structure (strict load checks it)
    split_compressed.load_state_dict(got["state"])
    with torch.no_grad():
        torch.testing.assert_close(split_compressed(x), compressed(x), rtol=1e-4, atol=1e-5)


def test_without_a_process_group_nothing_is_reduced():
    assert not is_distributed() and world_size() == 1
    stats = _statistics(_net(), _batches()[:1])
    assert int(stats[0].n.sum()) == 5 * 12 * 12
