"""`running_app`: ``python app.py`` on a free port for the benchmarks and the tests, always stopped afterwards."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


class AppDidNotStart(RuntimeError):
    """The app exited or did not listen in time; the message ends with its output."""


@dataclass
class RunningApp:
    url: str
    pid: int
    start_seconds: float  # from launch to accepting connections
    output: str = field(default="", repr=False)  # everything it printed, once stopped


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running_app(model: str | Path | None = None, timeout_s: float = 120) -> Iterator[RunningApp]:
    """Start ``python app.py [--model MODEL]`` on a free port and wait until it accepts connections; yields a
    `RunningApp` whose ``output`` is filled in once the block exits and the app is stopped (terminate, then kill)."""
    port = free_port()
    env = {**os.environ, "GRADIO_SERVER_PORT": str(port), "GRADIO_ANALYTICS_ENABLED": "False"}
    command = [sys.executable, "app.py"] + (["--model", str(model)] if model else [])
    with tempfile.TemporaryFile("w+") as log:  # a file, not a pipe: a chatty app can never block on it
        t0 = time.perf_counter()
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, text=True)
        app = RunningApp(f"http://127.0.0.1:{port}/", proc.pid, float("nan"))
        try:
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if proc.poll() is not None or time.perf_counter() - t0 > timeout_s:
                        log.seek(0)
                        raise AppDidNotStart(f"app.py did not start within {timeout_s:.0f} s:\n{log.read()}") from None
                    time.sleep(0.1)
            app.start_seconds = time.perf_counter() - t0
            yield app
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            log.seek(0)
            app.output = log.read()
