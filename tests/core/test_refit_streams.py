"""Sequential refit: activation streams spilled to disk give the in-RAM result, and clean up."""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from torch import nn

import hscc_core.compression as hc
from hscc_core.compression import _MemoryStream, _SpilledStream, compress
from hscc_core import CompressionConfig
from models import ModelSpec


class FourConv(nn.Module):
    """Four convs (with a pool in between) and two linears on 3x20x20 inputs."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 24, 3, padding=1),
                                      nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(24, 32, 3, padding=1), nn.ReLU(),
                                      nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2))
        self.classifier = nn.Sequential(nn.Linear(32 * 4, 48), nn.ReLU(), nn.Linear(48, 3))
        self.spec = ModelSpec("fourconv", input_size=(20, 20), channels=3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return FourConv().eval()


def _batches(n: int = 3, size: int = 6) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return [torch.rand(size, 3, 20, 20, generator=g) for _ in range(n)]


CONFIGS = [CompressionConfig(method="hscc", budget=2.0, rank_multiple=1),
           CompressionConfig(method="hscc", budget=2.0, rank_multiple=1, regions=(2, 2), clusters=2)]


@pytest.mark.parametrize("config", CONFIGS, ids=["plain", "regions-clusters"])
def test_spilled_streams_give_the_in_ram_weights_exactly(net, config, monkeypatch, tmp_path):
    monkeypatch.setenv("HSCC_SPILL_DIR", str(tmp_path))
    monkeypatch.delenv("HSCC_SPILL_BYTES", raising=False)
    ram, _ = compress(net, _batches(), config, progress=False)
    monkeypatch.setenv("HSCC_SPILL_BYTES", "0")
    spilled, _ = compress(net, _batches(), config, progress=False)
    a, b = ram.state_dict(), spilled.state_dict()
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert os.listdir(tmp_path) == []


def _spy_refit(monkeypatch, tmp_path, fail_at: int | None = None, exc: type[BaseException] = RuntimeError):
    """Wrap ``refit_factors``: record the spill folders seen at each call, raise at call ``fail_at``."""
    seen: list[list[str]] = []
    real = hc.refit_factors

    def spy(*args, **kwargs):
        seen.append(sorted(os.listdir(tmp_path)))
        if fail_at is not None and len(seen) == fail_at:
            raise exc("boom")
        return real(*args, **kwargs)

    monkeypatch.setattr(hc, "refit_factors", spy)
    return seen


@pytest.mark.parametrize("exc", [RuntimeError, KeyboardInterrupt])
def test_spill_folder_is_removed_when_the_refit_fails(net, monkeypatch, tmp_path, exc):
    monkeypatch.setenv("HSCC_SPILL_DIR", str(tmp_path))
    monkeypatch.setenv("HSCC_SPILL_BYTES", "0")
    seen = _spy_refit(monkeypatch, tmp_path, fail_at=3, exc=exc)  # mid-refit: streams are on disk
    with pytest.raises(exc, match="boom"):
        compress(net, _batches(), CONFIGS[0], progress=False)
    assert len(seen) == 3 and len(seen[-1]) == 1 and seen[-1][0].startswith("hscc-refit-")
    assert os.listdir(tmp_path) == []


def test_spill_folder_is_used_and_removed_after_success(net, monkeypatch, tmp_path):
    monkeypatch.setenv("HSCC_SPILL_DIR", str(tmp_path))
    monkeypatch.setenv("HSCC_SPILL_BYTES", "0")
    seen = _spy_refit(monkeypatch, tmp_path)
    compress(net, _batches(), CONFIGS[0], progress=False)
    assert seen and all(len(s) == 1 for s in seen)
    assert os.listdir(tmp_path) == []


def test_small_streams_stay_in_ram(net, monkeypatch, tmp_path):
    monkeypatch.setenv("HSCC_SPILL_DIR", str(tmp_path))
    monkeypatch.delenv("HSCC_SPILL_BYTES", raising=False)
    seen = _spy_refit(monkeypatch, tmp_path)
    compress(net, _batches(), CONFIGS[0], progress=False)
    assert seen and all(s == [] for s in seen)
    monkeypatch.setattr(hc, "SPILL_THRESHOLD_BYTES", 0)  # the constant, when no env var is set
    seen.clear()
    compress(net, _batches(), CONFIGS[0], progress=False)
    assert seen and all(len(s) == 1 for s in seen)


def test_spill_threshold_env_var(monkeypatch):
    monkeypatch.delenv("HSCC_SPILL_BYTES", raising=False)
    assert hc._spill_threshold() == hc.SPILL_THRESHOLD_BYTES == 1 << 28
    monkeypatch.setenv("HSCC_SPILL_BYTES", "12345")
    assert hc._spill_threshold() == 12345
    monkeypatch.setenv("HSCC_SPILL_BYTES", "lots")
    with pytest.raises(ValueError, match="HSCC_SPILL_BYTES"):
        hc._spill_threshold()


@pytest.mark.parametrize("kind", ["spilled", "memory"])
def test_stream_round_trips_tensors(kind, tmp_path):
    g = torch.Generator().manual_seed(0)
    tensors = [torch.randn(3, 5, 7, 2, generator=g).to(torch.float16), torch.randn(4, 9, generator=g).half(),
               torch.randn(2, 6, generator=g).half().t()]  # the last one is not contiguous
    stream = _SpilledStream(tmp_path, "x", 3) if kind == "spilled" else _MemoryStream(3)
    assert len(stream) == 3
    with pytest.raises(KeyError):
        stream.get(0)
    for j, t in enumerate(tensors):
        stream.put(j, t)
    for j, t in enumerate(tensors):
        got = stream.get(j)
        assert got.dtype == torch.float16 and got.shape == t.shape and torch.equal(got, t)
    # overwrite batch 1 while batch 2 is still to be read: nothing else changes
    new = torch.full((1, 3), 2.5, dtype=torch.float16)
    stream.put(1, new)
    assert torch.equal(stream.get(1), new) and torch.equal(stream.get(2), tensors[2])
    assert torch.equal(stream.get(0), tensors[0])
    stream.close()
    if kind == "spilled":
        assert os.listdir(tmp_path) == []
        assert not any(f.endswith(".tmp") for f in os.listdir(tmp_path))


def test_spilled_files_hold_no_pickle(tmp_path):
    stream = _SpilledStream(tmp_path, "h", 1)
    stream.put(0, torch.ones(2, 2, dtype=torch.float16))
    (path,) = tmp_path.iterdir()
    arr = np.load(path, allow_pickle=False)  # would raise on an object array
    assert arr.dtype == np.float16 and arr.shape == (2, 2)
    stream.close()
