"""Where a model's OpenVINO time goes, layer by layer: the model in fp32 and in int8 (its
deployed plan, through :class:`hscc_mri.deploy.Deployable`), each compiled with OpenVINO's
performance counters, run at batch 1 on a fixed-seed input; the per-node real times are
summed per layer group (the PyTorch module scope) and by the precision the node ran in.

It answers "why is int8 only ~2x faster here": which layers keep their fp32 time, and
how much of an int8 inference is spent outside the quantised convolutions (reorders,
pooling, the layers the plan keeps in fp32).

    python scripts/profile_openvino.py --model artifacts/vgg16-brain-mri-hscc-6x-537fdf6c32.safetensors \\
        --json reports/real/profile-openvino.json

Timings are this machine's (say which CPU: ``lscpu``); compare the two columns of one run.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _profile(compiled_model, x: np.ndarray, runs: int) -> tuple[dict[tuple[str, str, str], float], float]:
    """(mean microseconds per (node, type, kernel), median wall ms) over ``runs``."""
    request = compiled_model.create_infer_request()
    for _ in range(3):
        request.infer({0: x})
    per_node: dict[tuple[str, str, str], float] = defaultdict(float)
    walls = []
    for _ in range(runs):
        t0 = time.perf_counter()
        request.infer({0: x})
        walls.append((time.perf_counter() - t0) * 1e3)
        for info in request.profiling_info:
            per_node[(info.node_name, info.node_type, info.exec_type)] += info.real_time.total_seconds() * 1e6 / runs
    return per_node, float(np.median(walls))


def _by(per_node, key) -> dict[str, float]:
    out: dict[str, float] = defaultdict(float)
    for node, us in per_node.items():
        out[key(node)] += us
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="registry name or artifact path")
    p.add_argument("--runs", type=int, default=30, help="profiled runs per precision (after 3 warm-up)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", default=None, help="write the profile here")
    args = p.parse_args(argv)

    import openvino as ov

    from hscc_mri.deploy import Deployable
    from hscc_mri.resolve import resolve_model
    from hscc_mri.runtimes import Request, decide, has_native_bf16, layer_groups, node_group

    torch.set_num_threads(args.threads)
    model = resolve_model(args.model)
    artifact = args.model if Path(args.model).is_file() else None
    groups = layer_groups(model)
    torch.manual_seed(0)
    x = torch.randn(1, model.spec.channels, *model.spec.input_size).numpy()
    core = ov.Core()
    config = {"INFERENCE_NUM_THREADS": args.threads, "PERFORMANCE_HINT": "LATENCY", "PERF_COUNT": True}
    if has_native_bf16():  # as compile_openvino: float layers stay float32 there too
        config["INFERENCE_PRECISION_HINT"] = "f32"
    result: dict = {"model": Path(args.model).name, "threads": args.threads, "runs": args.runs, "precisions": {}}
    for precision in ("fp32", "int8"):
        target = Deployable(model, artifact)
        deployed = target.deploy(decide(Request("openvino", precision, [target])).choice, progress=False)
        graph = deployed.openvino_graph
        compiled = core.compile_model(graph, "CPU", config)
        per_node, wall = _profile(compiled, x, args.runs)
        layer = _by(per_node, lambda n: node_group(n[0], groups) or "(other)")
        kind = _by(per_node, lambda n: f"{n[1]} [{n[2]}]")
        total = sum(per_node.values()) / 1e3
        result["precisions"][precision] = {
            "wall_ms": wall, "profiled_ms": total, "fp32_layers": deployed.details.get("fp32_layers", []),
            "by_layer_ms": {k: v / 1e3 for k, v in layer.items()},
            "by_node_kind_ms": {k: v / 1e3 for k, v in kind.items()}}
        print(f"{precision}: median {wall:.1f} ms per inference (profiled nodes {total:.1f} ms)", flush=True)
    fp32, int8 = (result["precisions"][p]["by_layer_ms"] for p in ("fp32", "int8"))
    print(f"\n{'layer':<24}{'fp32 ms':>10}{'int8 ms':>10}{'ratio':>8}")
    for name in sorted(fp32, key=lambda k: -fp32[k]):
        a, b = fp32[name], int8.get(name, 0.0)
        print(f"{name:<24}{a:>10.2f}{b:>10.2f}{(a / b if b else float('nan')):>8.2f}")
    print("\nint8, by node type [kernel]:")
    for k, v in list(result["precisions"]["int8"]["by_node_kind_ms"].items())[:15]:
        print(f"  {k:<60}{v:>8.2f} ms")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
        print(f"wrote {args.json}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
