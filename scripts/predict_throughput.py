"""Scans per second of ``hscc-mri predict --json`` over many real files, as a user runs it.

    python scripts/predict_throughput.py                      # the 656 Testing JPEGs, default model
    python scripts/predict_throughput.py --model vgg16-brain-mri --runtime torch --precision fp32
    python scripts/predict_throughput.py DIR_OR_FILES... --limit 100 -- --repeats 0

Runs the command line once in a subprocess (``python -m hscc_mri predict --json ...``;
anything after ``--`` is passed on to it) and reads its output line by line as it comes.
Prints one JSON object: the files, the wall time of the whole command (model load and
compilation included), the time from the first result line to the last, and scans/s
over both (``scans_per_s`` is the steady rate the README quotes: it leaves out the
start-up, which a folder of any size pays once; ``scans_per_s_overall`` includes it).
Also the model line the command printed on stderr, the CPU and the thread count.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = Path("/work/shared/data/brain-mri/Testing")
SCAN_SUFFIXES = (".jpg", ".jpeg", ".png", ".dcm", ".nii", ".nii.gz")


def scan_files(paths: list[str], limit: int | None) -> list[str]:
    """The files under ``paths`` (folders searched recursively for scan suffixes), sorted,
    at most ``limit``."""
    out: list[str] = []
    for p in map(Path, paths):
        if p.is_dir():
            out += sorted(str(f) for f in p.rglob("*") if f.is_file() and f.name.lower().endswith(SCAN_SUFFIXES))
        else:
            out.append(str(p))
    return out[:limit] if limit else out


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def measure(files: list[str], cli_args: list[str]) -> dict:
    """Run ``hscc-mri predict --json *cli_args *files`` and time its output lines."""
    cmd = [sys.executable, "-m", "hscc_mri", "predict", "--json", *cli_args, *files]
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"}
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = last = None
    lines = errors = 0
    assert proc.stdout is not None
    for line in proc.stdout:
        now = time.perf_counter()
        first = now if first is None else first
        last = now
        lines += 1
        errors += "error" in json.loads(line)
    stderr = proc.stderr.read() if proc.stderr else ""
    rc = proc.wait()
    total = time.perf_counter() - t0
    steady = (last - first) if first is not None and last is not None else 0.0
    running = next((line for line in stderr.splitlines() if line.startswith("running ")), "")
    return {"files": len(files), "lines": lines, "errors": errors, "returncode": rc, "wall_s": round(total, 2),
            "first_line_s": round(first - t0, 2) if first is not None else None,
            "steady_s": round(steady, 2),
            "scans_per_s": round((lines - 1) / steady, 2) if steady > 0 else None,
            "scans_per_s_overall": round(lines / total, 2) if total > 0 else None,
            "model_line": running, "cpu": _cpu_name(), "cores": os.cpu_count(),
            "command": " ".join(["hscc-mri", "predict", "--json", *cli_args, f"<{len(files)} files>"]),
            **({"stderr_tail": stderr[-2000:]} if rc not in (0, 1) else {})}


def main() -> int:
    argv = sys.argv[1:]
    passthrough: list[str] = []
    if "--" in argv:
        i = argv.index("--")
        argv, passthrough = argv[:i], argv[i + 1:]
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("paths", nargs="*", default=[str(DEFAULT_DATA)], help="scan files or folders")
    parser.add_argument("--model", default=None, help="passed to predict --model (default: predict's own)")
    parser.add_argument("--runtime", default=None, help="passed to predict --runtime")
    parser.add_argument("--precision", default=None, help="passed to predict --precision")
    parser.add_argument("--threads", type=int, default=None, help="passed to predict --threads")
    parser.add_argument("--limit", type=int, default=None, help="only the first N files (sorted)")
    args = parser.parse_args(argv)
    files = scan_files(args.paths, args.limit)
    if not files:
        parser.error(f"no scan files under {args.paths}")
    cli_args = [a for flag, value in (("--model", args.model), ("--runtime", args.runtime),
                                      ("--precision", args.precision), ("--threads", args.threads))
                if value is not None for a in (flag, str(value))] + passthrough
    print(json.dumps(measure(files, cli_args), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
