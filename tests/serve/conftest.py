"""Shared pieces of the serving tests: replica app processes, and a bounded load client."""

from __future__ import annotations

import contextlib
import http.client
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

APP = Path(__file__).with_name("app.py")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(host: str, port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((host, port), 0.2):
            return
        time.sleep(0.05)
    raise AssertionError(f"nothing listens on {host}:{port}")


class App:
    """One replica app on loopback."""

    def __init__(self, replica: str, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.proc = subprocess.Popen(
            [sys.executable, str(APP), str(self.port)],
            env={"STYX_SERVE_REPLICA_ID": replica, "PATH": "/usr/bin:/bin", **(env or {})},
        )
        wait_port("127.0.0.1", self.port)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def apps() -> Iterator[list[App]]:
    made: list[App] = []
    yield made
    for app in made:
        app.stop()


def get(
    host: str, port: int, path: str = "/", timeout: float = 10.0, method: str = "GET"
) -> tuple[int, str]:
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request(method, path, body=b"{}" if method == "POST" else None)
        resp = conn.getresponse()
        return resp.status, resp.read().decode()
    finally:
        conn.close()


class Load:
    """``connections`` keep-alive clients, each sending GETs one after another until stopped;
    counts answers by body and failures (an error or a non-200 status), per connection."""

    def __init__(
        self, host: str, port: int, connections: int = 8, path: str = "/whoami", pause: float = 0.0
    ) -> None:
        self.host, self.port, self.path, self.pause = host, port, path, pause
        self.ok: Counter[str] = Counter()
        self.failures: list[tuple[int, str]] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(connections)
        ]

    def __enter__(self) -> Load:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(30)

    @property
    def total(self) -> int:
        with self._lock:
            return sum(self.ok.values()) + len(self.failures)

    def _run(self, index: int) -> None:
        conn: http.client.HTTPConnection | None = None
        while not self._stop.is_set():
            if conn is None:
                conn = http.client.HTTPConnection(self.host, self.port, timeout=15)
            try:
                conn.request("GET", self.path)
                resp = conn.getresponse()
                body = resp.read().decode()
                with self._lock:
                    if resp.status == 200:
                        self.ok[body.strip()] += 1
                    else:
                        self.failures.append((index, f"HTTP {resp.status}: {body.strip()[:80]}"))
            except (OSError, http.client.HTTPException) as e:
                with self._lock:
                    self.failures.append((index, repr(e)))
                conn.close()
                conn = None
            if self.pause:
                time.sleep(self.pause)
        if conn is not None:
            conn.close()
