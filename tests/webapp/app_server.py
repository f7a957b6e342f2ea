"""Start ``python app.py`` as a user would (a subprocess on a free loopback port) and stop it.

Used by the session fixture ``app_server`` in ``conftest.py`` and by tests that need a
second, short-lived server.
"""
from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: Where logs and screenshots of the app tests go (gitignored).
ARTIFACTS = ROOT / "test-artifacts"
#: How long a start may take: the default models load from the release (under a minute
#: on 2 CPU cores); a start that builds a model takes minutes and fails the tests.
START_TIMEOUT_S = 300


@dataclass
class AppServer:
    """A running ``app.py``."""

    url: str
    port: int
    proc: subprocess.Popen
    log_path: Path
    cache_dir: Path
    temp_dir: Path
    startup_s: float

    def log(self) -> str:
        """Everything the app printed so far (stdout and stderr)."""
        return self.log_path.read_text(errors="replace")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serving(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status == 200
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
        return False


def start_app(cache_dir: Path, temp_dir: Path, log_path: Path, *args: str,
              timeout: float = START_TIMEOUT_S) -> AppServer:
    """Run ``python app.py --port <free> --cache-dir cache_dir ...`` from the repository
    root and wait until its page answers; raise with the app's log if it does not."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    temp_dir.mkdir(parents=True, exist_ok=True)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "GRADIO_TEMP_DIR": str(temp_dir),
           "PYTHONUNBUFFERED": "1"}
    t0 = time.perf_counter()
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "app.py", "--port", str(port), "--cache-dir", str(cache_dir), *args],
                                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    server = AppServer(url, port, proc, log_path, Path(cache_dir), temp_dir, 0.0)
    while time.perf_counter() - t0 < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"app.py exited with status {proc.returncode}:\n{server.log()[-4000:]}")
        if _serving(url):
            server.startup_s = time.perf_counter() - t0
            return server
        time.sleep(1.0)
    stop_app(server)
    raise TimeoutError(f"app.py did not serve {url} within {timeout:.0f} s:\n{server.log()[-4000:]}")


def stop_app(server: AppServer, timeout: float = 30) -> int:
    """SIGTERM (the app shuts Gradio down cleanly, deleting its temporary files), then
    SIGKILL if it does not exit in ``timeout`` seconds. Returns the exit status."""
    if server.proc.poll() is None:
        server.proc.send_signal(signal.SIGTERM)
        try:
            server.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            server.proc.kill()
            server.proc.wait(10)
    return server.proc.returncode


def startup_seconds(log: str) -> dict[str, float]:
    """The times the app printed: ``build`` (cold start) or ``cache`` (cached load)."""
    out = {}
    if m := re.search(r"built in (\d+(?:\.\d+)?) s \(cold start\)", log):
        out["build"] = float(m.group(1))
    if m := re.search(r"loaded from cache in (\d+(?:\.\d+)?) s", log):
        out["cache"] = float(m.group(1))
    return out
