"""Quick difficulty check of the synthetic phantoms: train a tiny CNN, report accuracy.

A few conv layers on 64x64 downsampled phantoms, CPU, one thread, a couple of minutes.
The phantoms are meant to be learnable but not trivial: a tiny net should land well
above chance (25%) and below 100%; a full AlexNet at 224x224 should do better.

    python scripts/phantom_difficulty.py [--train 3000] [--test 1000] [--epochs 15]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from preprocessing.phantoms import PHANTOM_CLASSES, PhantomConfig, phantom_details  # noqa: E402


class TinyCNN(nn.Module):
    """Four 3x3 conv blocks, global average pooling, one linear layer."""

    def __init__(self, num_classes: int = 4, width: int = 24):
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 1
        for c_out in (width, 2 * width, 4 * width, 4 * width):
            layers += [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True), nn.MaxPool2d(2)]
            c_in = c_out
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(c_in, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(nn.functional.adaptive_avg_pool2d(self.features(x), 1), 1))


def make_set(n: int, seed: int, side: int) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """``(images (n, 1, side, side), labels (n,), hard flags (n,))``."""
    config = PhantomConfig()
    xs = np.empty((n, 1, side, side), dtype=np.float32)
    ys = np.empty(n, dtype=np.int64)
    hard = np.empty(n, dtype=bool)
    for i in range(n):
        d = phantom_details(i, seed, config)
        xs[i, 0] = cv2.resize(d.image, (side, side), interpolation=cv2.INTER_AREA)
        ys[i], hard[i] = d.label, d.hard
    return torch.from_numpy(xs), torch.from_numpy(ys), hard


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=3000)
    parser.add_argument("--test", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--side", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    t0 = time.perf_counter()
    x_tr, y_tr, _ = make_set(args.train, seed=1000, side=args.side)
    x_te, y_te, hard_te = make_set(args.test, seed=2000, side=args.side)
    print(f"generated {args.train + args.test} phantoms in {time.perf_counter() - t0:.1f} s")
    model = TinyCNN()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    steps = args.epochs * ((args.train + 63) // 64)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps)
    loss_fn = nn.CrossEntropyLoss()
    t0 = time.perf_counter()
    for epoch in range(args.epochs):
        model.train()
        perm = torch.randperm(args.train)
        total = 0.0
        for b in range(0, args.train, 64):
            idx = perm[b : b + 64]
            xb = x_tr[idx]
            flip = torch.rand(len(idx)) < 0.5
            xb[flip] = xb[flip].flip(-1)
            loss = loss_fn(model(xb), y_tr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(idx)
        print(f"epoch {epoch + 1:2d}  loss {total / args.train:.3f}  ({time.perf_counter() - t0:.0f} s)")
    model.eval()
    with torch.no_grad():
        pred = torch.cat([model(x_te[b : b + 256]).argmax(1) for b in range(0, args.test, 256)])
    ok = (pred == y_te).numpy()
    print(f"test accuracy {ok.mean():.3f}  (easy {ok[~hard_te].mean():.3f}, hard {ok[hard_te].mean():.3f})")
    conf = np.zeros((4, 4), dtype=int)
    np.add.at(conf, (y_te.numpy(), pred.numpy()), 1)
    print("confusion (rows = truth):", *PHANTOM_CLASSES)
    for name, row in zip(PHANTOM_CLASSES, conf):
        print(f"  {name:>10s}", row)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
