"""``hscc-mri predict``: classify scan files with a registry model or a saved artifact."""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Iterator

from ..release import RELEASE_DIR
from ._common import CliError, add_runtime_arguments, set_threads


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``predict``."""
    p = sub.add_parser(
        "predict", help="classify scan files (DICOM, NIfTI, PNG/JPEG) or DICOM series (folder, .zip)",
        description="Classify each FILE and print one result per file. A FILE may also be a folder or "
        ".zip of one DICOM series (slices sorted by position). With --json, one JSON object "
        "per line, in input order, each printed as soon as it is known: file, label, probabilities "
        "(class -> p), runtime, precision, latency_ms only with --timing/--repeats (median model time of "
        "the scan alone, batch 1), slice and slices for volumes, series and notes for a series; a file that "
        "cannot be read gives {file, error} and the run goes on. Files are read ahead while the model runs "
        "and classified in batches; a long run shows its progress on stderr. With the release's compressed model "
        "the safety net is on: a scan whose compressed answer is less sure than the threshold measured on the "
        "selection half of Testing/ (release/manifest.json) is classified by the uncompressed model, and each "
        "line says answered_by, the confidence compared and model_ms (model time spent on the scan, both models). "
        "Exit status 1 if any file "
        "could not be read, 130 when interrupted (the lines printed so far are complete).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", default=None,
                   help="registry name or artifact path (default: the release's default compressed model, the "
                        "one the app shows)")
    p.add_argument("--budget", type=float, default=None,
                   help="the release's compressed model at this FLOPs budget (3 or 6) instead of its default")
    p.add_argument("--uncompressed", action="store_true",
                   help="the release's uncompressed reference model (the app's other model)")
    p.add_argument("--no-safety-net", action="store_true",
                   help="the compressed model answers every scan (default: its unsure scans go to the uncompressed "
                        "model, at the release's measured threshold)")
    p.add_argument("--release", default=str(RELEASE_DIR), help="the release folder the default models come from")
    p.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    p.add_argument("--slice", type=int, default=None, help="slice of volumes (default: most brain signal)")
    p.add_argument("--timing", action="store_true",
                   help="measure each scan's latency_ms (alone, batch 1; --repeats timed runs, default 5)")
    p.add_argument("--repeats", type=int, default=0,
                   help="timed runs per scan for latency_ms (0: no timing unless --timing; any timing runs "
                        "the scans one at a time)")
    p.add_argument("--batch-size", type=int, default=16, help="most scans per model call (1: one at a time)")
    p.add_argument("--readers", type=int, default=1,
                   help="threads reading scans ahead while the model runs (0: read in turn)")
    p.add_argument("--series", default=None,
                   help="for a folder/zip holding several series: its number in the listing or its description")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (PyTorch and the runtime)")
    add_runtime_arguments(p)
    p.add_argument("files", nargs="+", metavar="FILE")
    p.set_defaults(func=run)


def resolve_predict_model(args: argparse.Namespace):
    """The model ``predict`` runs: :func:`hscc_mri.predictor.load_predictor` on the options
    (a :class:`hscc_mri.predictor.Predictor`).

    Raises:
        CliError: a bad combination of options, a model that cannot be loaded, or a
            release file that fails its check (named with both hash prefixes).
    """
    from hscc_core import ArtifactError

    from ..predictor import PredictRequest, load_predictor
    from ..release import ReleaseError
    from ..runtimes import RuntimeUnavailable

    request = PredictRequest(model=args.model, budget=args.budget, uncompressed=args.uncompressed,
                             safety_net=not args.no_safety_net, release=args.release, runtime=args.runtime,
                             precision=args.precision)
    try:
        return load_predictor(request, log=lambda m: print(m, file=sys.stderr, flush=True))
    except ReleaseError as e:
        raise CliError(f"{e} (hscc-mri release rebuilds the release; --model NAME|PATH runs another model)") from e
    except (ArtifactError, RuntimeUnavailable, ValueError) as e:
        raise CliError(str(e)) from e


def run(args: argparse.Namespace) -> int:
    import sys

    from ..batch_predict import predict_files

    set_threads(args.threads)
    predictor = resolve_predict_model(args)
    model, choice, net = predictor.model, predictor.choice, predictor.net
    print(f"running {predictor.info['model']} in {model.label}" + (f" ({choice.reason})" if choice.reason else ""),
          file=sys.stderr, flush=True)
    fallback, reference_name = (net.fallback, net.reference_name) if net else (None, None)
    if net:
        print(net.description, file=sys.stderr, flush=True)
    if args.batch_size < 1 or args.repeats < 0 or args.readers < 0:
        raise CliError("--batch-size must be at least 1, --repeats and --readers at least 0")
    repeats = args.repeats or (5 if args.timing else 0)
    results = predict_files(model, args.files, slice_index=args.slice, series=args.series,
                            batch_size=args.batch_size, readers=args.readers, repeats=repeats, fallback=fallback)
    return _print_results(results, len(args.files), args.json, predictor.info, reference_name)


#: Runs of at least this many files show their progress on stderr.
PROGRESS_MIN_FILES = 20


def _print_results(results: Iterator[dict[str, Any]], total: int, as_json: bool,
                   model_info: dict[str, Any] | None = None, reference_name: str | None = None) -> int:
    """Print each result line as it comes (flushed, so an interrupted run keeps every line
    printed), with progress on stderr for a long run; exit status 1 if any file failed.
    Each classified line names the model that answered (``model_info``: model, runtime,
    precision, after ``file``; ``reference_name`` for a scan the safety net handed to the
    uncompressed model); a file that could not be read stays ``{file, error}``."""
    import sys

    from hscc_core.progress import progress_bar
    from models import DISPLAY_NAMES

    failures = 0
    redraw = total >= PROGRESS_MIN_FILES and _is_terminal(sys.stderr) and _is_terminal(sys.stdout)
    with progress_bar(total=total, unit="scan", desc="predict", disable=total < PROGRESS_MIN_FILES,
                      leave=True) as bar:
        for res in results:
            failures += "error" in res
            if model_info and "error" not in res:
                info = dict(model_info)
                if res.get("answered_by") == "uncompressed" and reference_name:
                    info["model"] = reference_name
                res = {"file": res["file"], **info, **{k: v for k, v in res.items() if k not in info}}
            if as_json:
                line = json.dumps(res)
            elif "error" in res:
                line = f"{res['file']}: ERROR {res['error']}"
            else:
                p = res["probabilities"][res["label"]]
                ms = f", {res['latency_ms']:.1f} ms" if "latency_ms" in res else ""
                by = " [uncompressed model: the compressed one was unsure]" if res.get("answered_by") == "uncompressed" else ""
                line = f"{res['file']}: {DISPLAY_NAMES.get(res['label'], res['label'])} (p={p:.3f}{ms}){by}"
            if redraw:  # the bar on the same terminal: tqdm.write clears it and redraws it below the line
                bar.write(line, file=sys.stdout)
            else:
                print(line)
            sys.stdout.flush()
            bar.update(1)
    return 1 if failures else 0


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False
