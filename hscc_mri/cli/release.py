"""``hscc-mri release``: build the app's models once and ship them as files in the repository."""
from __future__ import annotations

import argparse

from ..recipes import DEFAULT_METHOD, DEFAULT_MODEL
from ._common import CliError, set_threads


def _artifact(text: str) -> tuple[float, str]:
    budget, sep, path = text.partition("=")
    try:
        if not sep or not path:
            raise ValueError
        return float(budget), path
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected BUDGET=PATH (e.g. 6=artifacts/x.safetensors), got {text!r}")


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``release``."""
    p = sub.add_parser(
        "release", help="build the app's models, quantise, evaluate, and write the release folder with its manifest",
        description="Build (through the cache) or take (--artifact) the default compressed models at each "
        "--budgets, quantise every model whose weights have a measured int8 plan (the dense reference too; "
        "plans of hscc_mri/plans/ or kept ones; none is measured here), evaluate them on --data and write "
        "--out: the files plus manifest.json (SHA-256 and size of each file, command, code commit, CPU kind, "
        "build time and peak memory, calibration data hash, per model its build key, int8 plan and measured "
        "fidelity with bootstrap SEs on the named test set), and with --select each compressed model's safety-net "
        "threshold measured on those selection scans. The app and predict load this folder. "
        "--safety-net-only --select DIR measures the thresholds of the release in --out and rewrites its manifest "
        "only (no build, the model files unchanged).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", default=DEFAULT_MODEL, help="registry model that is compressed (the reference)")
    p.add_argument("--method", default=DEFAULT_METHOD.value, help="compression method")
    p.add_argument("--budgets", type=float, nargs="+", default=[6.0, 3.0],
                   help="FLOPs budgets of the compressed models; the first is the app's default")
    p.add_argument("--artifact", type=_artifact, action="append", default=[], metavar="BUDGET=PATH",
                   help="ship this compressed artifact at BUDGET instead of building it (repeatable)")
    p.add_argument("--plan", type=_artifact, action="append", default=[], metavar="BUDGET=PLAN",
                   help="int8 plan for the compressed model at BUDGET when none was measured for its exact weights "
                        "(e.g. hscc_mri/plans/<id>-openvino.json of the same recipe built on another CPU; the "
                        "manifest records whose weights it was measured for)")
    p.add_argument("--data", default=None, help="labelled class-folder test set the models are evaluated on")
    p.add_argument("--select", default=None, metavar="DIR",
                   help="selection scans (class folders; the select half of Testing/, never the report half) the "
                        "safety-net thresholds are chosen on")
    p.add_argument("--safety-net-target", type=float, default=None,
                   help="agreement with the reference asked of the answers the compressed model keeps "
                        "(default 0.995)")
    p.add_argument("--safety-net-only", action="store_true",
                   help="only measure the safety net of the existing release in --out (needs --select)")
    p.add_argument("--out", default="release", help="the release folder (replaced as a whole)")
    p.add_argument("--cache-dir", default="artifacts", help="build cache folder")
    p.add_argument("--rebuild", action="store_true", help="compress again even if cached")
    p.add_argument("--no-int8", action="store_true", help="ship float models only")
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap replicates of the SEs")
    p.add_argument("--threads", type=int, default=None, help="CPU threads")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import shlex
    import sys

    from hscc_core import ArtifactError

    from ..release import ReleaseError
    from ..release_build import add_safety_net, make_release
    from ..safety_net import DEFAULT_TARGET

    set_threads(args.threads)
    target = DEFAULT_TARGET if args.safety_net_target is None else args.safety_net_target
    if not 0 < target <= 1:
        raise CliError(f"--safety-net-target must be in (0, 1], got {target}")
    if args.safety_net_only:
        if not args.select:
            raise CliError("--safety-net-only needs --select DIR (the selection scans)")
        try:
            manifest = add_safety_net(args.out, args.select, target)
        except (ReleaseError, FileNotFoundError, ValueError) as e:
            raise CliError(str(e)) from e
        _print_safety_net(manifest)
        return 0
    artifacts, plans = dict(args.artifact), dict(args.plan)
    unknown = sorted((set(artifacts) | set(plans)) - set(args.budgets))
    if unknown:
        raise CliError(f"--artifact/--plan for budget {', '.join(f'{b:g}' for b in unknown)}, which is not in "
                       f"--budgets")
    try:
        manifest = make_release(args.out, args.data, model=args.model, method=args.method, budgets=args.budgets,
                                artifacts=artifacts, plans=plans, cache_dir=args.cache_dir, rebuild=args.rebuild,
                                int8=not args.no_int8, n_bootstrap=args.bootstrap, select=args.select,
                                safety_net_target=target,
                                command=shlex.join(["hscc-mri", *sys.argv[1:]]))
    except (ArtifactError, FileNotFoundError, ValueError) as e:
        raise CliError(str(e)) from e
    for key, entry in manifest["models"].items():
        fid = entry.get("fidelity") or {}
        int8 = entry.get("int8")
        print(f"{key}: {entry.get('file') or entry['name']}  int8: "
              f"{'plan measured on ' + int8['measured_on']['kind'] if int8 else 'none'}  "
              f"agreement {fid.get('agreement', float('nan')):.3f}  accuracy {fid.get('accuracy', float('nan')):.3f}")
    _print_safety_net(manifest)
    print(f"{args.out}: {len(manifest['files'])} files, {manifest['total_bytes'] / 1e6:.1f} MB")
    return 0


def _print_safety_net(manifest: dict) -> None:
    for key, entry in manifest["models"].items():
        block = entry.get("safety_net") or {}
        for label in ("float", "int8"):
            if label in block:
                r = block[label]
                threshold = "everything" if r["threshold"] is None else f"{r['measure']} < {r['threshold']:.4f}"
                print(f"{key} {label} safety net: {threshold} -> uncompressed; on {r['n']} selection scans "
                      f"{100 * r['handed_over']:.1f}% handed over, kept answers agree {100 * r['kept_agreement']:.1f}% "
                      f"(target {100 * r['target']:.1f}%), combined {100 * r['effective_agreement']:.1f}%")
