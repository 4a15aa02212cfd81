"""Bucket stores for the test world: moto's S3 server, and a fault proxy in front of any store.

The stand-ins (:class:`MotoS3` here, :class:`tests.testworld.gcs.FakeGCS` and
:class:`tests.testworld.azurite.Azurite`) all offer one shape, :class:`StandIn`: the client
variables that point the official SDK at them, bucket URLs, and direct object access for the
test's own checks (which bypass the proxy and Styx alike).

:class:`BucketProxy` forwards HTTP to a stand-in unchanged unless a fault is set:

- ``deny(bucket)``: requests for that bucket get the store's own 403 answer;
- ``block(ip)``: connections from that address are closed without an answer (a node that cannot
  reach the store, while every other node can);
- ``rate`` (bytes/s): request and response bodies trickle (a slow link);
- ``cut_after`` (bytes): the next response is cut mid-body once that many bytes went out.

It listens on the address the stand-in does (the test bed's bridge, which SSH test hosts reach),
and counts what passed, so tests can see that a check happened before any machine was made.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Protocol

#: Credentials for moto (it accepts any; nothing real accepts these). Distinctive, so that a
#: test can look for the secret wherever it must not be.
S3_KEY, S3_SECRET = "AKIASTYXTESTONLY0001", "styx-test-secret-7Qd2pLw9"


def free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def wait_port(host: str, port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=1):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout:.0f} s")


class StandIn(Protocol):
    """What every bucket stand-in offers (see the module docstring)."""

    store: str
    host: str
    port: int

    def env(self) -> dict[str, str]: ...
    def url(self, bucket: str, prefix: str = "") -> str: ...
    def create(self, bucket: str) -> None: ...
    def put(self, bucket: str, key: str, data: bytes) -> None: ...
    def get(self, bucket: str, key: str) -> bytes: ...
    def keys(self, bucket: str) -> list[str]: ...
    def buckets(self) -> list[str]: ...
    def exists(self, bucket: str) -> bool: ...
    def bucket_of(self, path: str) -> str | None: ...
    def denied(self, bucket: str) -> tuple[int, dict[str, str], bytes]: ...


class MotoS3:
    """moto's S3 server on ``host`` (its own process: a crash of a test cannot wedge it)."""

    store = "s3"

    def __init__(self, host: str, root: Path) -> None:
        self.host, self.root = host, root
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> MotoS3:
        return self.up()

    def __exit__(self, *exc: object) -> None:
        self.down()

    def up(self) -> MotoS3:
        self.root.mkdir(parents=True, exist_ok=True)
        self.port = free_port(self.host)
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        code = "from moto.server import main; main()"
        self._proc = subprocess.Popen(
            [sys.executable, "-c", code, "-H", self.host, "-p", str(self.port)],
            stdout=(self.root / "moto.log").open("wb"),
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        wait_port(self.host, self.port)
        return self

    def down(self) -> None:
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait(10)
            self._proc = None

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    def env(self) -> dict[str, str]:
        return {
            "AWS_ACCESS_KEY_ID": S3_KEY,
            "AWS_SECRET_ACCESS_KEY": S3_SECRET,
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT_URL_S3": self.endpoint,
        }

    def url(self, bucket: str, prefix: str = "") -> str:
        return f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"

    def _client(self):  # type: ignore[no-untyped-def]
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=S3_KEY,
            aws_secret_access_key=S3_SECRET,
            region_name="us-east-1",
        )

    def create(self, bucket: str) -> None:
        self._client().create_bucket(Bucket=bucket)

    def put(self, bucket: str, key: str, data: bytes) -> None:
        self._client().put_object(Bucket=bucket, Key=key, Body=data)

    def get(self, bucket: str, key: str) -> bytes:
        return bytes(self._client().get_object(Bucket=bucket, Key=key)["Body"].read())

    def keys(self, bucket: str) -> list[str]:
        pages = self._client().get_paginator("list_objects_v2").paginate(Bucket=bucket)
        return sorted(o["Key"] for page in pages for o in page.get("Contents", ()))

    def buckets(self) -> list[str]:
        return sorted(b["Name"] for b in self._client().list_buckets().get("Buckets", ()))

    def exists(self, bucket: str) -> bool:
        return bucket in self.buckets()

    def bucket_of(self, path: str) -> str | None:
        first = path.split("?", 1)[0].lstrip("/").split("/", 1)[0]
        return first or None

    def denied(self, bucket: str) -> tuple[int, dict[str, str], bytes]:
        body = (
            "<?xml version='1.0' encoding='UTF-8'?><Error><Code>AccessDenied</Code>"
            f"<Message>Access Denied</Message><BucketName>{bucket}</BucketName></Error>"
        )
        return 403, {"Content-Type": "application/xml"}, body.encode()


# --- the fault proxy -----------------------------------------------------------------------------

_HOP = frozenset({"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade"})


class _Cut(Exception):
    """The proxy cuts the connection here."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _ProxyServer

    def log_message(self, format: str, *args: object) -> None:  # quiet; see BucketProxy.seen
        pass

    def do_GET(self) -> None:
        self._handle()

    do_PUT = do_POST = do_DELETE = do_HEAD = do_PATCH = do_GET

    def _body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            out = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return bytes(out)
                out += self._slow_read(size)
                self.rfile.readline()
        want = int(self.headers.get("Content-Length") or 0)
        body = self._slow_read(want)
        if len(body) < want:  # the client died mid-upload: a store never sees half a body
            raise _Cut
        return body

    def _slow_read(self, n: int) -> bytes:
        proxy = self.server.proxy
        out = bytearray()
        while len(out) < n:
            chunk = self.rfile.read(min(65536, n - len(out)))
            if not chunk:
                break
            out += chunk
            proxy.throttle(len(chunk))
            if proxy.cut(len(chunk), upload=True):
                raise _Cut
        return bytes(out)

    def _drop(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _handle(self) -> None:
        proxy = self.server.proxy
        if self.client_address[0] in proxy.blocked:
            self._drop()
            return
        try:
            body = self._body()
        except _Cut:  # the connection dies mid-upload: no answer at all
            self._drop()
            return
        bucket = proxy.standin.bucket_of(self.path)
        proxy.record(self.command, self.path, self.client_address[0])
        if bucket is not None and bucket in proxy.denied_buckets:
            status, headers, text = proxy.standin.denied(bucket)
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(text)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(text)
            return
        self._forward(body)

    def _forward(self, body: bytes) -> None:
        proxy = self.server.proxy
        up = http.client.HTTPConnection(proxy.standin.host, proxy.standin.port, timeout=120)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP}
        if body or self.command in ("PUT", "POST", "PATCH"):
            headers["Content-Length"] = str(len(body))
        try:
            up.request(self.command, self.path, body=body, headers=headers)
            resp = up.getresponse()
            length = resp.getheader("Content-Length")
            self.send_response(resp.status, resp.reason)
            for k, v in resp.getheaders():
                if k.lower() not in _HOP and k.lower() != "content-length":
                    self.send_header(k, v)
            chunked = length is None and self.command != "HEAD" and resp.status not in (204, 304)
            if chunked:
                self.send_header("Transfer-Encoding", "chunked")
            elif length is not None:
                self.send_header("Content-Length", length)
            self.end_headers()
            self._copy(resp, chunked)
        finally:
            up.close()

    def _copy(self, resp: http.client.HTTPResponse, chunked: bool) -> None:
        proxy = self.server.proxy
        while True:
            chunk = resp.read(65536)
            if not chunk:
                break
            proxy.throttle(len(chunk))
            if proxy.cut(len(chunk)):
                self.close_connection = True
                with contextlib.suppress(OSError):
                    self.wfile.write(chunk[: len(chunk) // 2])
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)
                return
            self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk) if chunked else chunk)
        if chunked:
            self.wfile.write(b"0\r\n\r\n")


class _ProxyServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], proxy: BucketProxy) -> None:
        super().__init__(address, _Handler)
        self.proxy = proxy


class BucketProxy:
    """A fault proxy in front of ``standin`` (see the module docstring). ``env()`` is the
    stand-in's, pointed at the proxy."""

    def __init__(self, standin: StandIn) -> None:
        self.standin = standin
        self.store = standin.store
        self.denied_buckets: set[str] = set()
        self.blocked: set[str] = set()
        self.rate: float | None = None
        self.cut_after: int | None = None  # response bytes, then the connection is cut (once)
        self.cut_upload_after: int | None = None  # request body bytes, likewise
        self.seen: list[tuple[str, str, str]] = []
        self.cuts = 0  # how many connections were cut
        self._lock = threading.Lock()
        self._server = _ProxyServer((standin.host, 0), self)
        self.host = standin.host
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> BucketProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    # --- what clients use ------------------------------------------------------------------------

    def env(self) -> dict[str, str]:
        real, mine = f"{self.standin.host}:{self.standin.port}", f"{self.host}:{self.port}"
        return {k: v.replace(real, mine) for k, v in self.standin.env().items()}

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        return getattr(self.standin, name)  # url, create, put, get, keys, buckets, exists

    # --- faults ----------------------------------------------------------------------------------

    def deny(self, bucket: str) -> None:
        self.denied_buckets.add(bucket)

    def block(self, ip: str) -> None:
        self.blocked.add(ip)

    def reset(self) -> None:
        with self._lock:
            self.denied_buckets.clear()
            self.blocked.clear()
            self.rate = self.cut_after = self.cut_upload_after = None
            self.cuts = 0
            self.seen.clear()

    def record(self, method: str, path: str, client: str) -> None:
        with self._lock:
            self.seen.append((method, path, client))

    def clients(self) -> set[str]:
        """The addresses that made requests (this machine's, the nodes')."""
        with self._lock:
            return {c for _m, _p, c in self.seen}

    def throttle(self, n: int) -> None:
        rate = self.rate
        if rate:
            time.sleep(n / rate)

    def cut(self, n: int, *, upload: bool = False) -> bool:
        """Whether the connection must be cut now (``n`` more bytes of a response went out,
        or of a request body came in); each cut fires once."""
        attr = "cut_upload_after" if upload else "cut_after"
        with self._lock:
            left = getattr(self, attr)
            if left is None:
                return False
            left -= n
            setattr(self, attr, left if left > 0 else None)
            if left <= 0:
                self.cuts += 1
            return left <= 0


@contextlib.contextmanager
def standin(store: str, host: str, root: Path) -> Iterator[StandIn]:
    """The stand-in for ``store`` on ``host``, started; pytest skips when it cannot run here."""
    import pytest

    if store == "s3":
        with MotoS3(host, root) as s3:
            yield s3
        return
    try:
        if store == "gcs":
            from tests.testworld.gcs import FakeGCS as cls
        else:
            from tests.testworld.azurite import Azurite as cls  # type: ignore[assignment]
    except ImportError as e:
        pytest.skip(f"no {store} stand-in here ({e})")
    try:
        server = cls(host, root)
        server.__enter__()
    except (FileNotFoundError, RuntimeError) as e:
        pytest.skip(f"the {store} stand-in cannot start here: {e}")
    try:
        yield server
    finally:
        server.__exit__(None, None, None)


def without(env: Mapping[str, str], *prefixes: str) -> dict[str, str]:
    """``env`` less every variable starting with one of ``prefixes``."""
    return {k: v for k, v in env.items() if not k.startswith(prefixes)}
