"""Training under DistributedDataParallel (two real processes, Gloo on loopback)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from hscc_mri.training import TrainConfig, make_optimizer, train_step
from tests.multiproc import free_port, run_processes
from tests.paths import ROOT


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(8, 8, 3, padding=1),
                         nn.ReLU(), nn.Flatten(), nn.Linear(8 * 8 * 8, 4))


def _global_batch() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    return torch.rand(16, 1, 16, 16, generator=g), torch.randint(0, 4, (16,), generator=g)


_CONFIG = TrainConfig(epochs=1, batch_size=16, lr=1e-2)


def _ddp_step(rank: int, world: int, out: str) -> None:
    model = _model()
    net = nn.parallel.DistributedDataParallel(model)
    opt = make_optimizer(model, _CONFIG, torch.device("cpu"))
    x, y = _global_batch()
    local = slice(rank * len(x) // world, (rank + 1) * len(x) // world)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=_CONFIG.label_smoothing)
    for _ in range(2):  # two steps: the second uses AdamW moments of the first
        train_step(net, opt, loss_fn, x[local], y[local])
    if rank == 0:
        torch.save(model.state_dict(), out)


def test_a_ddp_step_equals_the_single_process_step_on_the_global_batch(tmp_path: Path):
    out = tmp_path / "ddp.pt"
    run_processes(_ddp_step, str(out))
    ddp_state = torch.load(out, weights_only=True)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model = _model()
        before = {k: v.clone() for k, v in model.state_dict().items()}
        opt = make_optimizer(model, _CONFIG, torch.device("cpu"))
        loss_fn = nn.CrossEntropyLoss(label_smoothing=_CONFIG.label_smoothing)
        x, y = _global_batch()
        for _ in range(2):
            train_step(model, opt, loss_fn, x, y)
    finally:
        torch.set_num_threads(threads)
    for name, want in model.state_dict().items():
        assert not torch.equal(want, before[name])  # the step moved every tensor
        torch.testing.assert_close(ddp_state[name], want, rtol=1e-5, atol=1e-6)


@pytest.mark.e2e
def test_torchrun_trains_with_two_processes(tmp_path: Path):
    out = tmp_path / "alexnet-ddp.safetensors"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MASTER_ADDR": "127.0.0.1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(free_port()), "-m", "hscc_core", "train", "--data", "phantoms", "--n-train", "32",
           "--n-val", "16", "--n-test", "16", "--epochs", "1", "--batch-size", "16", "--out", str(out)]
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.with_suffix(".json").read_text())
    assert report["processes"] == 2 and report["sizes"] == {"train": 32, "val": 16, "test": 16}
    assert report["test"]["n"] == 16
    assert done.stderr.count("distributed training: 2 processes, 8 images each per step") == 1  # rank 0 logs


@pytest.mark.e2e
def test_torchrun_compress_splits_calibration_and_matches_one_process(tmp_path: Path):
    from hscc_mri.resolve import load_model, save_model
    from models import build_model

    torch.manual_seed(0)
    base = tmp_path / "alexnet.safetensors"
    save_model(build_model("alexnet").eval(), base)  # one model for every process
    common = ["compress", "--model", str(base), "--method", "hscc", "--budget", "2", "--exclude", "classifier.*",
              "--calib", "phantoms", "--calib-phantoms", "32", "--no-figures", "--threads", "1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    split, single = tmp_path / "split.safetensors", tmp_path / "single.safetensors"
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr",
                           "127.0.0.1", "--master_port", str(free_port()), "-m", "hscc_core", *common, "--out",
                           str(split)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "calibration split over 2 processes" in done.stderr
    done = subprocess.run([sys.executable, "-m", "hscc_core", *common, "--out", str(single)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    reports = [json.loads(p.with_suffix(".json").read_text()) for p in (split, single)]
    assert reports[0]["calibration_images"] == reports[1]["calibration_images"] == 32
    assert [layer["ranks"] for layer in reports[0]["layers"]] == [layer["ranks"] for layer in reports[1]["layers"]]
    x = torch.rand(4, 1, 128, 128)
    with torch.no_grad():
        a, b = load_model(split)(x), load_model(single)(x)
    torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-4)
