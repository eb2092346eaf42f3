"""A real course server for the tests: ``python -m labkit serve`` in its own process on a free loopback port."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class CourseServer:
    """Start, kill (SIGKILL) and restart a course server on one SQLite file."""

    def __init__(self, db: Path, log: Path, threads: int = 1) -> None:
        self.db, self.log, self.threads = db, log, threads
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 90.0) -> CourseServer:
        env = {**os.environ, "OMP_NUM_THREADS": str(self.threads), "LABKIT_TEACHER_URL": "", "LABKIT_TOKEN": ""}
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "labkit", "serve", "--db", str(self.db),
                                          "--port", str(self.port)], cwd=REPO_ROOT, env=env, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited ({self.proc.returncode}):\n{self.log.read_text()[-3000:]}")
            try:
                urllib.request.urlopen(f"{self.url}/v1/leaderboard", timeout=2).read()
                return self
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(0.2)
        raise RuntimeError(f"the server did not answer within {timeout} s:\n{self.log.read_text()[-3000:]}")

    def kill(self) -> None:
        """SIGKILL: no shutdown handler runs."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()
        self.proc = None
