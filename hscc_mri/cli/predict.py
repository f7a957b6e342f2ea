"""``hscc-mri predict``: classify scan files with a registry model or a saved artifact."""
from __future__ import annotations

import argparse
import json

from ..recipes import DEFAULT_MODEL
from ._common import CliError, set_threads


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
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from hscc_core import ArtifactError, optimize_for_inference
    from models import DISPLAY_NAMES

    from ..inference import predict_file
    from ..resolve import resolve_model

    set_threads(args.threads)
    try:
        model = optimize_for_inference(resolve_model(args.model))
    except ArtifactError as e:
        raise CliError(str(e)) from e
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
