"""``hscc-mri predict``: classify scan files with a registry model or a saved artifact."""
from __future__ import annotations

import argparse
import json

from ..recipes import DEFAULT_MODEL
from ._common import CliError, add_runtime_arguments, set_threads


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``predict``."""
    p = sub.add_parser(
        "predict", help="classify scan files (DICOM, NIfTI, PNG/JPEG) or DICOM series (folder, .zip)",
        description="Classify each FILE and print one result per file. A FILE may also be a folder or "
        ".zip of one DICOM series (slices sorted by position). With --json, one JSON object "
        "per line: file, label, probabilities (class -> p), latency_ms (median model time, batch 1), "
        "slice and slices for volumes, series and notes for a series; a file that cannot be read gives "
        "{file, error} and the run goes on. Exit status 1 if any file could not be read.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", default=DEFAULT_MODEL, help="registry name or artifact path")
    p.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    p.add_argument("--slice", type=int, default=None, help="slice of volumes (default: most brain signal)")
    p.add_argument("--repeats", type=int, default=5, help="timed runs per file for latency_ms")
    p.add_argument("--series", default=None,
                   help="for a folder/zip holding several series: its number in the listing or its description")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (PyTorch and the runtime)")
    add_runtime_arguments(p)
    p.add_argument("files", nargs="+", metavar="FILE")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import sys
    from pathlib import Path

    from hscc_core import ArtifactError
    from models import DISPLAY_NAMES

    from ..deploy import choose_runtime, deploy
    from ..inference import predict_file
    from ..resolve import resolve_model
    from ..runtimes import RuntimeUnavailable

    set_threads(args.threads)
    try:
        source = resolve_model(args.model)
        artifact = args.model if Path(args.model).is_file() else None
        choice = choose_runtime(args.runtime, args.precision, [(source, artifact)])
        model = deploy(source, choice, artifact=artifact)
    except (ArtifactError, RuntimeUnavailable, ValueError) as e:
        raise CliError(str(e)) from e
    print(f"running {args.model} in {model.label}" + (f" ({choice.reason})" if choice.reason else ""),
          file=sys.stderr, flush=True)
    failures = 0
    for f in args.files:
        res = predict_file(model, f, slice_index=args.slice, repeats=args.repeats, series=args.series)
        failures += "error" in res
        if args.json:
            print(json.dumps(res), flush=True)
        elif "error" in res:
            print(f"{f}: ERROR {res['error']}", flush=True)
        else:
            p = res["probabilities"][res["label"]]
            print(f"{f}: {DISPLAY_NAMES.get(res['label'], res['label'])} (p={p:.3f}, "
                  f"{res['latency_ms']:.1f} ms)", flush=True)
    return 1 if failures else 0
