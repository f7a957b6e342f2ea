"""HSCC-MRI clinician app: ``python app.py [--share] [--port N] [--model NAME_OR_PATH] ...``.

Starts a local web page (127.0.0.1 by default) where a scan (DICOM, NIfTI, PNG/JPEG) is
classified by the compressed model next to the uncompressed one, with latency, speed-up,
FLOPs and parameters. The default models come from the release committed in ``release/``
(each file checked against its manifest; loaded in seconds); other models are built once
(progress in the terminal) and cached in ``--cache-dir``.

The page itself is built by :mod:`webapp.ui` after the models are ready (building it at
import time would mean compressing a model on ``import app``).
"""
from __future__ import annotations

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # before gradio is imported: no telemetry

import argparse
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Sequence

EPILOG = """examples:
  python app.py                      # HSCC 6x of vgg16-brain-mri (the release) on http://127.0.0.1:7860
  python app.py --budget 3           # the release's HSCC 3x
  python app.py --port 8080 --method svd --budget 3
  python app.py --model artifacts/vgg16-hscc6.safetensors   # a compressed artifact as is
  python app.py --rebuild            # compress again even if a cached model exists

privacy: the page listens on this computer only unless --host/--share say otherwise.
Uploaded scans are read into memory; Gradio's temporary files (uploads, shown images)
live in a private folder (under $GRADIO_TEMP_DIR if set), are deleted after --temp-ttl
seconds and the folder is removed at shutdown (Ctrl+C or SIGTERM); nothing about a scan
is logged. Research decision support only, not a diagnosis.
"""


def build_parser() -> argparse.ArgumentParser:
    """The command line of the app (see ``python app.py --help``)."""
    from hscc_core import METHODS
    from hscc_mri.recipes import DEFAULT_BUDGET, DEFAULT_METHOD, DEFAULT_MODEL

    p = argparse.ArgumentParser(
        prog="python app.py",
        description="Web app: classify a brain MRI scan (glioma, meningioma, pituitary, no tumour) with a "
        "compressed classifier side by side with the uncompressed one, showing both predictions, "
        "latencies, the speed-up, FLOPs and parameters. The default models (HSCC 6x and 3x of "
        "vgg16-brain-mri) ship in release/ and load in seconds; any other model is built once (minutes on "
        "a laptop CPU) and cached in --cache-dir.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=DEFAULT_MODEL,
                   help="registry model name, or an artifact path: a compressed artifact is shown as is; an "
                        "uncompressed one is compressed (and cached) first (default: %(default)s)")
    p.add_argument("--reference", default=None,
                   help="uncompressed model to compare against (default: --model, or the registry model a "
                        "compressed artifact was built from)")
    p.add_argument("--method", default=DEFAULT_METHOD.value, choices=METHODS,
                   help="compression method (default: %(default)s)")
    p.add_argument("--budget", type=float, default=DEFAULT_BUDGET, help="FLOPs reduction factor (default: %(default)s)")
    p.add_argument("--cache-dir", default="artifacts", help="where compressed models are cached (default: %(default)s)")
    p.add_argument("--rebuild", action="store_true", help="compress again even if a cached model exists (and do "
                   "not use the release)")
    p.add_argument("--release", default="release",
                   help="release folder whose models are used when it holds the asked model (files checked "
                        "against its manifest; a file that fails is rebuilt instead); 'none': never "
                        "(default: %(default)s)")
    p.add_argument("--host", default="127.0.0.1",
                   help="interface to listen on (default: %(default)s, this computer only; 0.0.0.0 exposes the "
                        "app to the network)")
    p.add_argument("--port", type=int, default=None, help="TCP port (default: first free port from 7860)")
    p.add_argument("--share", action="store_true",
                   help="also create a public *.gradio.live link (traffic, including scans, goes through "
                        "Gradio's relay servers; needs internet)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: all cores available)")
    from hscc_mri.cli._common import add_runtime_arguments

    add_runtime_arguments(p, models="both models")  # the same options as hscc-mri predict; the page names them
    p.add_argument("--repeats", type=int, default=7, help="timed runs per model and scan; the median is shown "
                   "(default: %(default)s)")
    p.add_argument("--concurrency", type=int, default=2,
                   help="requests processed at once; more wait in Gradio's queue (default: %(default)s)")
    p.add_argument("--max-upload-mb", type=int, default=512,
                   help="largest upload accepted, in MB; larger ones are refused by the page before they "
                        "are read (default: %(default)s)")
    p.add_argument("--read-timeout", type=float, default=30.0,
                   help="seconds one upload may take to read; each upload is read in a child process, so a "
                        "slow or hostile file holds up no other user's request, and one that takes longer is "
                        "stopped with a message; 0: read in the server process without a limit "
                        "(default: %(default)s)")
    p.add_argument("--temp-ttl", type=int, default=300,
                   help="seconds after which Gradio's temporary copies of uploads and shown images are "
                        "deleted; all are deleted at shutdown (default: %(default)s)")
    return p


def _stop_on_sigterm() -> None:
    """Turn SIGTERM into KeyboardInterrupt, so that a stopped app shuts Gradio down cleanly and
    removes its temporary folder (as with Ctrl+C)."""
    def handler(signum, frame):  # noqa: ARG001
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


def _private_temp_dir() -> Path:
    """A fresh folder for all of Gradio's temporary files (set before gradio is imported,
    which reads ``GRADIO_TEMP_DIR`` at import), removed by :func:`main` at exit."""
    path = Path(tempfile.mkdtemp(prefix="hscc-app-", dir=os.environ.get("GRADIO_TEMP_DIR") or None))
    os.environ["GRADIO_TEMP_DIR"] = str(path)
    return path


def main(argv: Sequence[str] | None = None) -> int:
    """Load (or build once) the models, then serve the page until interrupted."""
    args = build_parser().parse_args(argv)
    _stop_on_sigterm()
    temp = _private_temp_dir()
    try:
        return _run(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        shutil.rmtree(temp, ignore_errors=True)


def _run(args: argparse.Namespace) -> int:
    import torch

    from hscc_core import ArtifactError
    from hscc_mri.runtimes import RuntimeUnavailable
    from webapp.models import load_model_pair

    threads = args.threads or len(os.sched_getaffinity(0))
    torch.set_num_threads(threads)
    t0 = time.perf_counter()
    try:
        pair = load_model_pair(args.model, args.method, args.budget, args.cache_dir, rebuild=args.rebuild,
                               reference=args.reference, runtime=args.runtime, precision=args.precision,
                               release=None if args.release == "none" else args.release)
    except (ArtifactError, RuntimeUnavailable, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    s = pair.seconds
    if "compressed_build" in s:
        how = f"built in {s['compressed_build']:.0f} s (cold start)"
    elif "release_load" in s:
        how = f"loaded from the release in {s['release_load']:.1f} s"
    elif "compressed_load" in s:
        how = f"loaded from cache in {s['compressed_load']:.1f} s"
    else:
        how = f"loaded from the artifact in {s['compressed_artifact']:.1f} s"
    print(f"app: compressed model {pair.name} {how}; reference {pair.reference_name} in "
          f"{s['reference_load']:.1f} s; both in {pair.runtime.label}; ready after {time.perf_counter() - t0:.1f} s; torch threads {threads}",
          file=sys.stderr, flush=True)

    from webapp.ui import build_demo, launch

    demo = build_demo(pair, repeats=args.repeats, temp_ttl_s=args.temp_ttl, read_timeout_s=args.read_timeout or None)
    launch(demo, host=args.host, port=args.port, share=args.share, concurrency=args.concurrency,
           max_file_size=f"{args.max_upload_mb}mb")
    return 0  # Gradio returns here after Ctrl+C / SIGTERM, having closed the server


if __name__ == "__main__":
    sys.exit(main())
