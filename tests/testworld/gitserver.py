"""Git servers for the test world: a private repository over HTTP behind a token, and public
ones over git's own protocol (``git daemon``), both listening on one address of a bridge.

:class:`GitHTTPServer` runs ``git http-backend`` as CGI for every request whose HTTP basic
auth carries the token as its password (any user name, as GitHub accepts
``x-access-token:TOKEN``), and answers 401 otherwise. It records each request's method, path
and status, never its headers, so a test can assert what reached it without the token being
kept anywhere. :func:`git_daemon` starts ``git daemon --export-all`` on an address and port.
"""

from __future__ import annotations

import base64
import contextlib
import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


def free_port(host: str) -> int:
    """A TCP port that is free on ``host`` now."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: object) -> None:  # quiet; see .requests
        pass

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def _authorized(self) -> bool:
        kind, _, value = (self.headers.get("Authorization") or "").partition(" ")
        if kind.lower() != "basic":
            return False
        try:
            _, _, password = base64.b64decode(value).decode().partition(":")
        except ValueError:
            return False
        return password == self.server.token

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = b""
            while True:
                size = int(self.rfile.readline().strip().split(b";")[0], 16)
                if size == 0:
                    self.rfile.readline()
                    return data
                data += self.rfile.read(size)
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _serve(self) -> None:
        path, _, query = self.path.partition("?")
        body = self._body() if self.command == "POST" else b""
        if not self._authorized():
            self.server.record(self.command, path, 401)
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="styx-test"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "GIT_PROJECT_ROOT": str(self.server.root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "REQUEST_METHOD": self.command,
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)),
            "REMOTE_USER": "tester",
            "REMOTE_ADDR": self.client_address[0],
            "GIT_PROTOCOL": self.headers.get("Git-Protocol", ""),
            "HTTP_CONTENT_ENCODING": self.headers.get("Content-Encoding", ""),
        }
        proc = subprocess.run(
            ["git", "http-backend"], input=body, env=env, capture_output=True, timeout=120
        )
        head, _, payload = proc.stdout.partition(b"\r\n\r\n")
        if not _:
            head, _, payload = proc.stdout.partition(b"\n\n")
        status, headers = 200, []
        for line in head.decode("latin-1").splitlines():
            name, _, value = line.partition(":")
            if name.lower() == "status":
                status = int(value.split()[0])
            elif name:
                headers.append((name, value.strip()))
        self.server.record(self.command, path, status)
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], root: Path, token: str) -> None:
        super().__init__(address, _Handler)
        self.root, self.token = root, token
        self.requests: list[tuple[str, str, int]] = []
        self._lock = threading.Lock()

    def record(self, method: str, path: str, status: int) -> None:
        with self._lock:
            self.requests.append((method, path, status))


class GitHTTPServer:
    """Smart HTTP git for the bare repositories under ``root``, behind ``token``."""

    def __init__(self, root: Path, host: str, token: str) -> None:
        self._server = _Server((host, 0), root, token)
        self.host, self.port = host, int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> GitHTTPServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def url(self, repo: str) -> str:
        return f"http://{self.host}:{self.port}/{repo}"

    @property
    def requests(self) -> list[tuple[str, str, int]]:
        """(method, path, status) of every request so far."""
        return list(self._server.requests)


@contextlib.contextmanager
def git_daemon(base: Path, host: str) -> Iterator[str]:
    """``git daemon`` serving every repository under ``base`` at ``git://host:PORT/``; yields
    that URL prefix, and stops the daemon (and its children) at the end."""
    port = free_port(host)
    proc = subprocess.Popen(
        ["git", "daemon", "--export-all", "--reuseaddr", f"--base-path={base}",
         f"--listen={host}", f"--port={port}", "--informative-errors", str(base)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while True:
            with socket.socket() as s:
                if s.connect_ex((host, port)) == 0:
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"git daemon did not start on {host}:{port}")
            time.sleep(0.1)
        yield f"git://{host}:{port}"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, 15)
        proc.wait(timeout=10)


def git(*args: str, cwd: Path | None = None) -> str:
    """``git ARGS`` for building test repositories: a fixed author, no user config."""
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t", "GIT_CONFIG_GLOBAL": "/dev/null"}  # fmt: skip
    out = subprocess.run(
        ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=True
    )
    return out.stdout.strip()


def make_repos(base: Path, names: tuple[str, ...]) -> tuple[Path, dict[str, str]]:
    """Bare repositories ``base/srv/NAME.git`` with one history: main (c1, c2), branch side
    (c3, off c1) and the annotated tag v1 at c1; the folder and each commit's sha by name."""
    src, srv = base / "src", base / "srv"
    git("init", "-q", "-b", "main", str(src))
    shas = {}
    for name, text in (("c1", "one"), ("c2", "two")):
        (src / "f.txt").write_text(text + "\n")
        git("add", "f.txt", cwd=src)
        git("commit", "-q", "-m", name, cwd=src)
        shas[name] = git("rev-parse", "HEAD", cwd=src)
    git("tag", "-a", "v1", "-m", "v1", shas["c1"], cwd=src)
    git("checkout", "-q", "-b", "side", shas["c1"], cwd=src)
    (src / "f.txt").write_text("side\n")
    git("commit", "-qam", "c3", cwd=src)
    shas["c3"] = git("rev-parse", "HEAD", cwd=src)
    git("checkout", "-q", "main", cwd=src)
    srv.mkdir()
    for name in names:
        git("clone", "-q", "--bare", str(src), str(srv / f"{name}.git"))
    return srv, shas
