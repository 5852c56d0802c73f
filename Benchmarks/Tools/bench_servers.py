"""The throw-away servers of a one-machine benchmark (auth_bench.py, tls_bench.py): a work
directory, a PostgreSQL in it (scripts/postgres.sh) and the processes started in it, all stopped
and the directory removed when the `with` block ends, pass or fail."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import harness  # free ports; the importing tool has put Tests/e2e on sys.path

POSTGRES_SH = Path(__file__).resolve().parents[2] / "scripts" / "postgres.sh"


def wait_port(port: int, proc: subprocess.Popen, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{what} did not listen on {port}")


class BenchServers:
    """`work` is a fresh directory (mode 755: PostgreSQL runs as the postgres user and needs
    to reach its data directory inside it); each process logs to work/<what>.log."""

    def __init__(self, prefix: str):
        self.work = Path(tempfile.mkdtemp(prefix=prefix))
        os.chmod(self.work, 0o755)
        self.pg_dir = self.work / "pg"
        self.procs: list[subprocess.Popen] = []

    def __enter__(self) -> "BenchServers":
        return self

    def __exit__(self, *exc) -> None:
        for p in list(self.procs):
            p.kill()
        subprocess.run(["bash", str(POSTGRES_SH), "stop", str(self.pg_dir)], capture_output=True, timeout=120)
        shutil.rmtree(self.work, ignore_errors=True)

    def start_postgres(self) -> str:
        """Starts PostgreSQL on a free port; returns its URL without the database name
        (postgres://postgres@127.0.0.1:PORT), for kine's --endpoint with a database of its own."""
        url = subprocess.run(["bash", str(POSTGRES_SH), "start", str(self.pg_dir), str(harness.free_port())],
                             check=True, capture_output=True, text=True, timeout=180).stdout.strip().splitlines()[-1]
        return url.rsplit("/", 1)[0]

    def start(self, cmd: list[str], port: int, what: str) -> subprocess.Popen:
        """Starts cmd in a session of its own and waits until it listens on port."""
        p = subprocess.Popen(cmd, stdout=open(self.work / f"{what}.log", "ab"), stderr=subprocess.STDOUT,
                             start_new_session=True)
        self.procs.append(p)
        wait_port(port, p, what)
        return p

    def stop(self, p: subprocess.Popen) -> None:
        """SIGTERM, SIGKILL after 15 s."""
        p.terminate()
        try:
            p.wait(timeout=15)
        except subprocess.TimeoutExpired:
            p.kill()
        self.procs.remove(p)
