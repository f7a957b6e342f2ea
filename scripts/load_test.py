"""Load test of the app (issue 26): nine users sending real scans, with and without a
tenth who keeps sending the worst hostile file.

    python scripts/load_test.py --users 9 --scans 4 --rounds 2 --json reports/real/load-test.json

Starts ``python app.py`` (the release's models, 127.0.0.1, no analytics) unless ``--url``
names a running one, and drives it through its API (``gradio_client``, endpoint
``/predict``) as a browser would: each request uploads its file.

1. **Probe**: every case of ``scripts/make_hostile_inputs.py`` (written into a temporary
   folder) is sent once, alone; the ``--worst`` cases that took the longest to be refused
   become the hostile files (``--hostile`` names them instead). A file over the upload
   limit is sent as a hostile client would, ignoring the limit the page announces.
2. **Phases**, repeated ``--rounds`` times in the order A B C, C B A, A B C ... so that the
   load on a shared machine falls on all alike:

   * A (baseline): ``--users`` users at once, each sending ``--scans`` real scans one
     after another (``tests/fixtures/brain-mri-mini/Testing``, then ``samples/``);
   * B:<case>, one per hostile file: the same, while one more user sends that file again
     and again until the others are done.

Reported per phase: the users' median and p90 wait per request (upload, queue, read and
both models, as the client sees it), requests answered (and answered with the folder's
class), errors; the hostile user's refusals (time to refusal, the message); the peak
resident memory of the server process (and of it with its children: the read processes)
sampled every 0.2 s. A table goes to stdout, progress lines to stderr, everything to
``--json``. No file names of uploads are logged by the app; the scans used are public
data-set images and the hostile files are synthetic.
"""
from __future__ import annotations

import argparse
import html
import json
import os
import queue
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

REAL_SCAN_DIRS = (ROOT / "tests" / "fixtures" / "brain-mri-mini" / "Testing", ROOT / "samples")
#: Marker of the app's refusal of a file (``webapp.ui._error_banner``).
REFUSED = "This file cannot be used."
#: Name of the phase without a hostile user.
BASELINE = "A"
_CLASS_OF_PREFIX = {"gl": "glioma", "me": "meningioma", "no": "notumor", "pi": "pituitary"}


def log(msg: str) -> None:
    print(f"[load-test {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- inputs

def real_scans() -> list[tuple[Path, str]]:
    """Real test scans and their true classes (as the app names them, from the file names),
    the classes taking turns so that every stretch of the list holds all four."""
    from itertools import chain, zip_longest

    from models import DISPLAY_NAMES

    by_class: dict[str, list[tuple[Path, str]]] = {}
    for folder in REAL_SCAN_DIRS:
        for p in sorted(folder.rglob("Te-*.jpg")):
            key = _CLASS_OF_PREFIX.get(p.name[3:5])
            if key:
                by_class.setdefault(key, []).append((p, DISPLAY_NAMES[key]))
    if not by_class:
        raise SystemExit(f"no real scans under {', '.join(map(str, REAL_SCAN_DIRS))}")
    return [x for x in chain.from_iterable(zip_longest(*by_class.values())) if x is not None]


def hostile_inputs(out: Path) -> dict[str, list[Path]]:
    """Every case of ``scripts/make_hostile_inputs.py`` written into ``out``: case -> the
    files one upload sends (a folder case sends its files together)."""
    sys.path.insert(0, str(ROOT / "scripts"))
    from make_hostile_inputs import make_all

    return {name: sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path]
            for name, path in make_all(out).items()}


# --------------------------------------------------------------------------- one request

@dataclass
class Answer:
    """One request as the client saw it."""

    seconds: float
    kind: str  # "answered", "refused" (the app's message) or "error" (no answer)
    label: str | None = None  # the compressed model's class when answered
    message: str = ""  # the refusal or error, as plain text


def _plain(markup: str) -> str:
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", markup))).strip()


def new_client(url: str):
    from gradio_client import Client

    return Client(url, verbose=False, download_files=False)


def send(client, files: list[Path], timeout: float) -> Answer:
    """Upload ``files`` to ``/predict`` and wait for the answer (at most ``timeout`` s)."""
    from gradio_client import handle_file

    limit = client.config.get("max_file_size") or float("inf")
    if any(f.stat().st_size > limit for f in files):
        return send_oversize(client, next(f for f in files if f.stat().st_size > limit), timeout)
    t0 = time.perf_counter()
    try:
        job = client.submit([handle_file(str(f)) for f in files], api_name="/predict")
        _slider, status, _image, label_c, _label_o, _html = job.result(timeout=timeout)
    except Exception as e:  # noqa: BLE001 - an upload refused by size, a timeout, a dropped connection
        return Answer(time.perf_counter() - t0, "error", message=f"{type(e).__name__}: {str(e)[:300]}")
    seconds = time.perf_counter() - t0
    status = status or ""
    if REFUSED in status:
        return Answer(seconds, "refused", message=_plain(status))
    if isinstance(label_c, dict) and label_c.get("label"):
        return Answer(seconds, "answered", label=label_c["label"])
    return Answer(seconds, "error", message=_plain(status)[:300] or "no label in the answer")


def send_oversize(client, path: Path, timeout: float) -> Answer:
    """Upload ``path`` although it is over the page's size limit (``gradio_client`` and the
    browser refuse to; a hostile client does not): a streamed multipart POST to Gradio's
    upload route, answered when the server refuses it."""
    import httpx

    t0 = time.perf_counter()
    try:
        with open(path, "rb") as f:
            r = httpx.post(client.upload_url, files=[("files", (path.name, f))], timeout=timeout)
    except httpx.HTTPError as e:  # the server may close the connection while the body is still sent
        return Answer(time.perf_counter() - t0, "error", message=f"{type(e).__name__}: {str(e)[:300]}")
    seconds = time.perf_counter() - t0
    if r.status_code == 413:
        return Answer(seconds, "refused", message=f"upload refused (HTTP 413): {r.text[:300]}")
    return Answer(seconds, "error", message=f"upload answered HTTP {r.status_code}: {r.text[:300]}")


# --------------------------------------------------------------------------- memory

class MemorySampler:
    """Peak resident memory of a process and of it with its descendants, every ``every`` s,
    overall and per named stretch (:meth:`stretch`)."""

    def __init__(self, pid: int | None, every: float = 0.2):
        self.pid, self.every = pid, every
        self.label: str | None = None
        self.peaks: dict[str, dict[str, float]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "MemorySampler":
        if self.pid is not None:
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)

    def stretch(self, label: str | None) -> None:
        self.label = label

    def _run(self) -> None:
        import psutil

        proc = psutil.Process(self.pid)
        while not self._stop.wait(self.every):
            try:
                own = proc.memory_info().rss
                tree = own
                for child in proc.children(recursive=True):
                    try:
                        tree += child.memory_info().rss
                    except psutil.Error:
                        pass
            except psutil.Error:
                return
            for key in ("all", self.label):
                if key is None:
                    continue
                peak = self.peaks.setdefault(key, {"server_mib": 0.0, "with_children_mib": 0.0})
                peak["server_mib"] = max(peak["server_mib"], own / 2**20)
                peak["with_children_mib"] = max(peak["with_children_mib"], tree / 2**20)

    def high_water_mib(self) -> float | None:
        """The kernel's peak resident memory of the process (``VmHWM``)."""
        if self.pid is None:
            return None
        try:
            text = Path(f"/proc/{self.pid}/status").read_text()
        except OSError:
            return None
        m = re.search(r"VmHWM:\s+(\d+) kB", text)
        return int(m.group(1)) / 1024 if m else None


# --------------------------------------------------------------------------- phases

@dataclass
class PhaseResult:
    """One run of a phase: the users' answers and the hostile user's."""

    phase: str
    round: int
    wall_s: float
    users: list[Answer] = field(default_factory=list)
    correct: int = 0
    hostile: list[Answer] = field(default_factory=list)
    loadavg_before: tuple[float, ...] = ()
    loadavg_after: tuple[float, ...] = ()
    server_cpu_s: float | None = None  # CPU time of the server process (not its read processes)
    hostile_client_cpu_s: float | None = None  # CPU time of the hostile user's process


def _hostile_loop(url: str, timeout: float, commands, answers) -> None:
    """The hostile user's process: on a list of files, send them again and again until told
    to stop, then hand back the answers; ``"exit"`` ends it."""
    client = new_client(url)
    answers.put("ready")
    while (files := commands.get()) != "exit":
        paths, sent = [Path(f) for f in files], []
        while True:
            sent.append(asdict(send(client, paths, timeout)))
            try:
                commands.get_nowait()  # "stop"
                break
            except queue.Empty:
                pass
        answers.put(sent)


class HostileUser:
    """The hostile user, in a process of its own: streaming a large upload from a thread of
    the measuring process would take the interpreter lock from the other users' threads, and
    a hostile client does not share the others' interpreter."""

    def __init__(self, url: str, timeout: float = 600.0):
        import multiprocessing as mp

        ctx = mp.get_context("spawn")
        self._commands, self._answers = ctx.Queue(), ctx.Queue()
        self._timeout = timeout
        self._proc = ctx.Process(target=_hostile_loop, args=(url, timeout, self._commands, self._answers),
                                 daemon=True)
        self._proc.start()
        if self._answers.get(timeout=300) != "ready":
            raise RuntimeError("the hostile user's process did not start")

    def start(self, files: list[Path]) -> None:
        self._commands.put([str(f) for f in files])

    def cpu_seconds(self) -> float | None:
        """CPU time of the hostile user's process so far (its sending costs the machine too)."""
        return _cpu_seconds(self._proc.pid)

    def stop(self) -> list[Answer]:
        """Stop after the request in flight; the answers since :meth:`start`."""
        self._commands.put("stop")
        return [Answer(**a) for a in self._answers.get(timeout=self._timeout + 60)]

    def __enter__(self) -> "HostileUser":
        return self

    def __exit__(self, *exc) -> None:
        self._commands.put("exit")
        self._proc.join(30)
        if self._proc.is_alive():
            self._proc.kill()
            self._proc.join(10)


def run_phase(phase: str, clients: list, scans: list[tuple[Path, str]], per_user: int,
              hostile: HostileUser | None = None, hostile_files: list[Path] | None = None,
              timeout: float = 600.0, offset: int = 0) -> PhaseResult:
    """Each of ``clients`` sends ``per_user`` scans one after another, all users at once; with
    ``hostile``, that user sends ``hostile_files`` from the start until the others are done
    (its request in flight then is waited for). User ``u``'s ``j``-th scan is
    ``scans[(offset + u * per_user + j) % len(scans)]``."""
    n = len(clients)
    start = threading.Barrier(n, action=(lambda: hostile.start(hostile_files)) if hostile else None)
    result = PhaseResult(phase, 0, 0.0, loadavg_before=os.getloadavg())
    lock = threading.Lock()

    def user(u: int) -> None:
        start.wait()
        for j in range(per_user):
            path, truth = scans[(offset + u * per_user + j) % len(scans)]
            a = send(clients[u], [path], timeout)
            with lock:
                result.users.append(a)
                result.correct += a.label == truth

    t0 = time.perf_counter()
    cpu0 = hostile.cpu_seconds() if hostile is not None else None
    with ThreadPoolExecutor(n) as pool:
        for f in [pool.submit(user, u) for u in range(n)]:
            f.result()
    if hostile is not None:
        result.hostile = hostile.stop()
        cpu1 = hostile.cpu_seconds()
        result.hostile_client_cpu_s = None if cpu0 is None or cpu1 is None else cpu1 - cpu0
    result.wall_s = time.perf_counter() - t0
    result.loadavg_after = os.getloadavg()
    return result


def _stats(seconds: list[float]) -> dict[str, float | None]:
    if not seconds:
        return {"median_s": None, "p90_s": None, "mean_s": None, "max_s": None}
    x = np.asarray(seconds)
    return {"median_s": float(np.median(x)), "p90_s": float(np.percentile(x, 90)), "mean_s": float(x.mean()),
            "max_s": float(x.max())}


def summarise(runs: list[PhaseResult], phase: str) -> dict:
    """The users' and the hostile user's figures over every run of ``phase``."""
    mine = [r for r in runs if r.phase == phase]
    users = [a for r in mine for a in r.users]
    hostile = [a for r in mine for a in r.hostile]
    refused = [a for a in hostile if a.kind == "refused"]
    return {
        "runs": len(mine),
        "requests": len(users),
        "answered": sum(a.kind == "answered" for a in users),
        "answered_correctly": sum(r.correct for r in mine),
        "errors": sum(a.kind != "answered" for a in users),
        "error_messages": sorted({a.message for a in users if a.kind != "answered"}),
        "wait": _stats([a.seconds for a in users]),
        "wall_s": sum(r.wall_s for r in mine),
        "server_cpu_s": None if any(r.server_cpu_s is None for r in mine) else sum(r.server_cpu_s for r in mine),
        "hostile": None if phase == BASELINE else {
            "requests": len(hostile),
            "refused": len(refused),
            "answered": sum(a.kind == "answered" for a in hostile),
            "errors": sum(a.kind == "error" for a in hostile),
            "time_to_refusal": _stats([a.seconds for a in refused]),
            "client_cpu_s": None if any(r.hostile_client_cpu_s is None for r in mine)
            else sum(r.hostile_client_cpu_s for r in mine),
            "messages": sorted({a.message for a in hostile if a.kind != "answered"}),
        },
    }


def probe(client, cases: dict[str, list[Path]], timeout: float) -> dict[str, dict]:
    """Each hostile case sent once, alone: time to its answer and what it was."""
    out = {}
    for name, files in cases.items():
        a = send(client, files, timeout)
        out[name] = {"seconds": a.seconds, "kind": a.kind, "message": a.message,
                     "upload_mib": sum(f.stat().st_size for f in files) / 2**20}
        log(f"probe {name}: {a.kind} after {a.seconds:.2f} s {a.message[:90]}")
    return out


def slowest_refused(probed: dict[str, dict], n: int) -> list[str]:
    """The ``n`` cases the app took the longest to refuse (by the upload limit or a reader)."""
    refused = sorted((k for k, v in probed.items() if v["kind"] == "refused"), key=lambda k: -probed[k]["seconds"])
    if not refused:
        raise SystemExit("no hostile case was refused; nothing to send as the hostile user")
    return refused[:n]


def hostile_phase(case: str) -> str:
    return f"B:{case}"


def phase_order(phases: list[str], rounds: int) -> list[tuple[int, str]]:
    """``(round, phase)`` in the order run: the phases, then reversed, and so on (A B C, C B A,
    ...), so that a drift in the machine's load falls on every phase alike."""
    return [(r + 1, p) for r in range(rounds) for p in (phases if r % 2 == 0 else phases[::-1])]


# --------------------------------------------------------------------------- report

def table(summary: dict) -> str:
    """The phases side by side, as printed."""
    names = list(summary["phases"])
    cols = [summary["phases"][n] for n in names]
    mem = summary.get("memory_mib") or {}

    def row(title: str, cells: list) -> str:
        return f"{title:<28}" + "".join(f"{str(c):>24}" for c in cells)

    def seconds(x: float | None) -> str:
        return "-" if x is None else f"{x:.2f}"

    lines = [row("", ["A: baseline" if n == BASELINE else n[:23] for n in names]),
             row("requests (users)", [c["requests"] for c in cols]),
             row("answered / correct", [f"{c['answered']} / {c['answered_correctly']}" for c in cols]),
             row("errors", [c["errors"] for c in cols]),
             row("median wait s", [seconds(c["wait"]["median_s"]) for c in cols]),
             row("p90 wait s", [seconds(c["wait"]["p90_s"]) for c in cols]),
             row("median wait / baseline", [f"{summary['median_ratio'].get(n, 1.0):.2f}" for n in names]),
             row("phase wall s (all runs)", [f"{c['wall_s']:.0f}" for c in cols]),
             row("server CPU s (all runs)", [seconds(c["server_cpu_s"]) for c in cols])]
    for key, title in (("server_mib", "peak RSS server MiB"), ("with_children_mib", "peak RSS + readers MiB")):
        lines.append(row(title, [f"{mem[n][key]:.0f}" if n in mem else "-" for n in names]))
    hostile = [c["hostile"] for c in cols]
    lines.append(row("hostile sent / refused", [f"{h['requests']} / {h['refused']}" if h else "-" for h in hostile]))
    lines.append(row("hostile client CPU s", [seconds(h["client_cpu_s"]) if h else "-" for h in hostile]))
    lines.append(row("refusal s median / max", [
        f"{seconds(h['time_to_refusal']['median_s'])} / {seconds(h['time_to_refusal']['max_s'])}" if h else "-"
        for h in hostile]))
    for n, h in zip(names, hostile):
        for m in (h or {}).get("messages", []):
            lines.append(f"{n}: {m[:200]}")
    return "\n".join(lines)


def _cpu_seconds(pid: int | None) -> float | None:
    """User and system CPU time of process ``pid`` so far."""
    import psutil

    try:
        t = psutil.Process(pid).cpu_times() if pid is not None else None
    except psutil.Error:
        return None
    return None if t is None else t.user + t.system


def _git_commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def _run_json(r: PhaseResult) -> dict:
    return {"phase": r.phase, "round": r.round, "wall_s": r.wall_s, "server_cpu_s": r.server_cpu_s,
            "hostile_client_cpu_s": r.hostile_client_cpu_s,
            "loadavg_before": r.loadavg_before,
            "loadavg_after": r.loadavg_after, "wait": _stats([a.seconds for a in r.users]),
            "errors": sum(a.kind != "answered" for a in r.users), "correct": r.correct,
            "user_seconds": sorted(round(a.seconds, 3) for a in r.users),
            "hostile_kinds": [a.kind for a in r.hostile],
            "hostile_seconds": [round(a.seconds, 3) for a in r.hostile]}


def run(args: argparse.Namespace) -> dict:
    """The whole load test; returns the JSON summary."""
    from tests.webapp.app_server import ARTIFACTS, start_app, stop_app

    load_before = os.getloadavg()
    work = Path(tempfile.mkdtemp(prefix="hscc-load-"))
    server = None
    try:
        cases = hostile_inputs(work / "hostile")
        if args.hostile and not set(args.hostile) <= set(cases):
            unknown = sorted(set(args.hostile) - set(cases))
            raise SystemExit(f"unknown hostile case(s) {unknown}; known: {sorted(cases)}")
        url, pid = args.url, args.pid
        if url is None:
            log("starting app.py (release models, 127.0.0.1) ...")
            server = start_app(work / "cache", work / "gradio-tmp", ARTIFACTS / "load-test-app.log",
                               *shlex.split(args.app_args))
            url, pid = server.url, server.proc.pid
            log(f"app serving on {url} after {server.startup_s:.0f} s")
        scans = real_scans()
        with MemorySampler(pid) as mem:
            clients = [new_client(url) for _ in range(args.users)]
            log("warm-up: one real scan (the read server starts)")
            warm = send(clients[0], [scans[0][0]], args.request_timeout)
            if warm.kind != "answered":
                raise SystemExit(f"the warm-up scan was not answered: {warm.kind} {warm.message}")
            mem.stretch("probe")
            probed = probe(new_client(url), cases, args.request_timeout) if args.probe else {}
            chosen = args.hostile or slowest_refused(probed, args.worst)
            log(f"hostile phases: {', '.join(chosen)}")
            phases = [BASELINE] + [hostile_phase(c) for c in chosen]
            runs: list[PhaseResult] = []
            with HostileUser(url, args.request_timeout) as hostile:
                for i, (r, phase) in enumerate(phase_order(phases, args.rounds)):
                    case = None if phase == BASELINE else chosen[phases.index(phase) - 1]
                    mem.stretch(phase)
                    log(f"round {r}/{args.rounds} {phase}: {args.users} users x {args.scans} scans"
                        + (f" + a user sending {case}" if case else ""))
                    cpu0 = _cpu_seconds(pid)
                    res = run_phase(phase, clients, scans, args.scans, hostile if case else None,
                                    cases[case] if case else None, timeout=args.request_timeout,
                                    offset=i * args.users * args.scans)
                    res.round = r
                    if cpu0 is not None:
                        res.server_cpu_s = _cpu_seconds(pid) - cpu0
                    runs.append(res)
                    s = _stats([a.seconds for a in res.users])
                    log(f"  median {s['median_s']:.2f} s, p90 {s['p90_s']:.2f} s, wall {res.wall_s:.0f} s, "
                        f"errors {sum(a.kind != 'answered' for a in res.users)}"
                        + (f", hostile {len(res.hostile)} sent / {sum(a.kind == 'refused' for a in res.hostile)}"
                           " refused" if case else ""))
            mem.stretch(None)
            high_water = mem.high_water_mib()
        summary = {p: summarise(runs, p) for p in phases}
        base = summary[BASELINE]["wait"]["median_s"]
        ratios = {p: summary[p]["wait"]["median_s"] / base for p in phases[1:]}
        return {
            "command": "python scripts/load_test.py " + " ".join(shlex.quote(a) for a in args.argv),
            "note": args.note,
            "commit": _git_commit(),
            "cpus": os.cpu_count(),
            "niceness": os.nice(0),
            "loadavg_before": list(load_before),
            "loadavg_after": list(os.getloadavg()),
            "url_given": args.url is not None,
            "app_args": args.app_args,
            "app_startup_s": server.startup_s if server else None,
            "users": args.users, "scans_per_user": args.scans, "rounds": args.rounds,
            "order": [p for _, p in phase_order(phases, args.rounds)],
            "real_scans": {"folders": [str(d.relative_to(ROOT)) for d in REAL_SCAN_DIRS], "count": len(scans)},
            "hostile_cases": chosen,
            "hostile_chosen_by": "--hostile" if args.hostile else f"probe: the {args.worst} slowest to refuse",
            "probe": probed,
            "phases": summary,
            "median_ratio": ratios,
            "within_2x": {p: v <= 2.0 for p, v in ratios.items()},
            "memory_mib": {**mem.peaks, "server_high_water": high_water},
            "runs": [_run_json(r) for r in runs],
        }
    finally:
        if server is not None:
            rc = stop_app(server)
            log(f"app stopped (exit status {rc})")
        shutil.rmtree(work, ignore_errors=True)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python scripts/load_test.py", description=__doc__.split("\n\n")[0],
                                epilog=__doc__.split("\n\n", 2)[2],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", default=None, help="a running app to test (default: start app.py on a free port)")
    p.add_argument("--pid", type=int, default=None, help="with --url: the app's process id, for its memory")
    p.add_argument("--app-args", default="", help="more arguments for app.py when started here, e.g. "
                   "'--concurrency 2 --read-timeout 30 --max-upload-mb 512' (the defaults)")
    p.add_argument("--users", type=int, default=9, help="users sending real scans (default: %(default)s)")
    p.add_argument("--scans", type=int, default=4, help="scans each user sends per phase, one after another "
                   "(default: %(default)s)")
    p.add_argument("--rounds", type=int, default=2, help="rounds of all phases: A B C, C B A, ... "
                   "(default: %(default)s)")
    p.add_argument("--hostile", nargs="+", default=None, metavar="CASE",
                   help="hostile case(s) of scripts/make_hostile_inputs.py, a hostile phase each (default: "
                        "the --worst slowest to refuse in the probe)")
    p.add_argument("--worst", type=int, default=2, help="without --hostile: how many of the cases slowest "
                   "to refuse in the probe get a hostile phase each (default: %(default)s)")
    p.add_argument("--no-probe", dest="probe", action="store_false",
                   help="do not send every hostile case once first (needs --hostile)")
    p.add_argument("--request-timeout", type=float, default=600.0, help="seconds a request may take before "
                   "it counts as an error (default: %(default)s)")
    p.add_argument("--note", default="", help="a note kept in the JSON (e.g. what else loaded the machine)")
    p.add_argument("--json", type=Path, default=None, help="write the figures here")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    if not args.probe and not args.hostile:
        raise SystemExit("--no-probe needs --hostile")
    summary = run(args)
    print(table(summary))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(summary, indent=1) + "\n")
        log(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
