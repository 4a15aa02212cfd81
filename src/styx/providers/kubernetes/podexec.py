"""Commands and files on a pod, through the API server's exec (the official client's websocket
stream, ``v5.channel.k8s.io``): no SSH, no kubectl.

:class:`PodRunner` is the cluster layer's :class:`~styx.cluster.runner.Runner` for one pod.
Environment and working folder are set by a small ``sh`` prologue (exec has neither). Files
travel as a tar stream into ``tar -x`` on the pod, which every image with a shell has; a folder
goes through rsync instead (incremental, with rsync's filters) when the pod has rsync, with
:mod:`.rsh` as rsync's remote shell.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

from styx.cluster.runner import RSYNC_TIMEOUT_S, RunResult
from styx.errors import HostUnreachable, RemoteError
from styx.providers.kubernetes import client
from styx.providers.kubernetes.errors import translated

CHUNK = 1 << 20
#: Seconds a command may take when the caller gives no timeout.
DEFAULT_TIMEOUT = 600.0


def open_stream(context: str, namespace: str, pod: str, argv: Sequence[str], *, stdin: bool) -> Any:
    """A live exec stream of ``argv`` in ``pod`` (binary channels)."""
    from kubernetes.stream import stream  # type: ignore[import-untyped,unused-ignore]

    api = client.exec_core(context)
    with translated(context, f"exec in pod {pod}"), _refused_upgrade(pod):
        return stream(
            api.connect_get_namespaced_pod_exec,
            pod,
            namespace,
            command=list(argv),
            stdin=stdin,
            stdout=True,
            stderr=True,
            tty=False,
            _preload_content=False,
            binary=True,
            _request_timeout=client.TIMEOUT,
        )


@contextlib.contextmanager
def _refused_upgrade(pod: str) -> Any:
    """The client (v36) reports a refused exec upgrade (a pod not running) as AttributeError."""
    try:
        yield
    except AttributeError as exc:
        raise HostUnreachable(
            f"Pod {pod} refused the exec (it is not running or is gone)."
        ) from exc


def exec_bytes(
    context: str,
    namespace: str,
    pod: str,
    argv: Sequence[str],
    *,
    stdin: bytes | None = None,
    stdin_file: Any = None,
    timeout: float | None = None,
) -> tuple[int, bytes, bytes]:
    """Run ``argv`` in the pod; (exit code, stdout, stderr). ``stdin`` (bytes) or
    ``stdin_file`` (a binary file object, streamed) is sent, then closed."""
    ws = open_stream(
        context, namespace, pod, argv, stdin=stdin is not None or stdin_file is not None
    )
    deadline = time.monotonic() + (timeout or DEFAULT_TIMEOUT)
    out, err = bytearray(), bytearray()
    try:
        if stdin is not None or stdin_file is not None:
            _send_stdin(ws, stdin, stdin_file, out, err, deadline, pod)
        while ws.is_open():
            left = deadline - time.monotonic()
            if left <= 0:
                raise HostUnreachable(
                    f"{argv[0]!r} in pod {pod} did not finish in {timeout or DEFAULT_TIMEOUT:.0f} s."
                )
            ws.update(timeout=min(left, 1.0))
            _drain(ws, out, err)
        _drain(ws, out, err)
        code = ws.returncode
    except HostUnreachable:
        raise
    except (OSError, ValueError) as exc:  # the websocket broke: the pod or API went away
        raise HostUnreachable(f"The exec stream to pod {pod} broke: {exc}.") from exc
    finally:
        ws.close()
    if code is None:
        raise HostUnreachable(f"The exec stream to pod {pod} ended without an exit status.")
    return int(code), bytes(out), bytes(err)


def read_pending(ws: Any) -> None:
    """Take in frames whose bytes TLS has already decrypted: the client's ``update`` polls the
    socket, which cannot see them, so a reply could wait for the next packet."""
    from websocket import ABNF  # type: ignore[import-untyped,unused-ignore]

    raw = getattr(ws.sock, "sock", None)
    pending = getattr(raw, "pending", None)
    while ws.is_open() and pending is not None and pending() > 0:
        op, frame = ws.sock.recv_data_frame(True)
        if op == ABNF.OPCODE_CLOSE:
            ws._connected = False
            return
        data = frame.data or b""
        if not data:
            continue
        channel, payload = data[0], data[1:]
        if channel == 255:  # v5: the server closed one of our channels
            if payload:
                ws._closed_channels.add(payload[0])
            continue
        if not ws.binary:
            payload = payload.decode("utf-8", "replace")
        if payload:
            if channel in (1, 2):
                ws._all.write(payload)
            ws._channels[channel] = ws._channels.get(channel, payload[:0]) + payload


def _drain(ws: Any, out: bytearray, err: bytearray) -> None:
    read_pending(ws)
    if ws.peek_stdout():
        out += ws.read_stdout()
    if ws.peek_stderr():
        err += ws.read_stderr()


def _send_stdin(
    ws: Any,
    data: bytes | None,
    source: Any,
    out: bytearray,
    err: bytearray,
    deadline: float,
    pod: str,
) -> None:
    def chunks() -> Any:
        if data is not None:
            for i in range(0, len(data), CHUNK):
                yield data[i : i + CHUNK]
            return
        while block := source.read(CHUNK):
            yield block

    for block in chunks():
        if not ws.is_open():
            break
        if time.monotonic() > deadline:
            raise HostUnreachable(f"Sending data to pod {pod} did not finish in time.")
        ws.write_stdin(block)
        ws.update(timeout=0)
        _drain(ws, out, err)
    if ws.is_open():
        ws.close_channel(0)  # v5: the command sees the end of its input


def env_prologue(argv: Sequence[str], env: Mapping[str, str] | None, cwd: str | None) -> list[str]:
    """``argv`` wrapped so that it runs with ``env`` added and in ``cwd``."""
    if not env and not cwd:
        return list(argv)
    script = ""
    if cwd:
        script += 'cd "$STYX_CWD" && unset STYX_CWD && '
    script += 'exec "$@"'
    exports = [f"{k}={v}" for k, v in (env or {}).items()]
    if cwd:
        exports.append(f"STYX_CWD={cwd}")
    return ["env", *exports, "sh", "-c", script, "sh", *argv]


class PodRunner:
    """Runs commands in one pod of a cluster (``~`` in paths is the pod's home)."""

    _rsync_seen: dict[tuple[str, str, str], bool] = {}
    _lock = threading.Lock()

    def __init__(
        self, context: str, namespace: str, pod: str, *, home: str = "/root", node_name: str = ""
    ) -> None:
        self.context = context
        self.namespace = namespace
        self.pod = pod
        self.home = home
        self.node_name = node_name or pod

    def _expand(self, path: str) -> str:
        if path == "~" or path.startswith("~/"):
            return self.home + path[1:]
        return path

    def run(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        input_text: str | None = None,
        timeout: float | None = None,
    ) -> RunResult:
        full = env_prologue([self._expand(a) for a in argv], env, cwd and self._expand(cwd))
        code, out, err = exec_bytes(
            self.context,
            self.namespace,
            self.pod,
            full,
            stdin=input_text.encode() if input_text is not None else None,
            timeout=timeout,
        )
        return RunResult(code, out.decode(errors="replace"), err.decode(errors="replace"))

    def has_rsync(self) -> bool:
        key = (self.context, self.namespace, self.pod)
        with self._lock:
            if key in self._rsync_seen:
                return self._rsync_seen[key]
        found = self.run(["sh", "-c", "command -v rsync"], timeout=30).returncode == 0
        with self._lock:
            self._rsync_seen[key] = found
        return found

    def rsync_up(
        self, src: str, dst: str, *, filter_args: Sequence[str] = (), delete: bool = False
    ) -> None:
        dst = self._expand(dst)
        if os.path.isdir(src) and self.has_rsync():
            self._rsync(src, dst, filter_args, delete)
        else:
            self._tar(src, dst, filter_args, delete)

    def _rsync(self, src: str, dst: str, filter_args: Sequence[str], delete: bool) -> None:
        rsh = [sys.executable, "-m", "styx.providers.kubernetes.rsh", self.context, self.namespace]
        self.run(["mkdir", "-p", os.path.dirname(dst.rstrip("/")) or "/"], timeout=60).check(
            f"Making {os.path.dirname(dst)} on {self.node_name}"
        )
        argv = ["rsync", "-a", "--blocking-io", *(["--delete"] if delete else []), *filter_args]
        argv += ["-e", shlex.join(rsh), "--", src.rstrip("/") + "/", f"{self.pod}:{dst}"]
        try:
            proc = subprocess.run(
                argv, capture_output=True, text=True, timeout=RSYNC_TIMEOUT_S, check=False
            )
        except subprocess.TimeoutExpired as e:
            raise HostUnreachable(f"rsync {src} -> {self.node_name}:{dst} did not finish.") from e
        if proc.returncode != 0:
            raise RemoteError(
                f"rsync {src} -> {self.node_name}:{dst} failed with exit code {proc.returncode}: "
                f"{proc.stderr.strip()[-300:]}",
            )

    def _tar(self, src: str, dst: str, filter_args: Sequence[str], delete: bool) -> None:
        """``src`` into ``dst`` as a tar stream: a folder's contents (after rsync's filters,
        applied to a local copy when there are any), or one file."""
        with tempfile.TemporaryDirectory(prefix="styx-k8s-") as tmp:
            base, name = src, None
            if os.path.isdir(src):
                if filter_args:
                    staged = os.path.join(tmp, "staged")
                    argv = ["rsync", "-a", *filter_args, "--", src.rstrip("/") + "/", staged + "/"]
                    subprocess.run(argv, capture_output=True, check=True, timeout=RSYNC_TIMEOUT_S)
                    base = staged
                members = ["."]
                script = 'mkdir -p "$1" && tar -x -o -C "$1" -f -'
                if delete:
                    script = 'rm -rf "$1" && ' + script
            else:
                base, name = os.path.dirname(os.path.abspath(src)), os.path.basename(src)
                members = [name]
                # One file lands at dst itself, whatever its local name.
                script = (
                    'd=$(dirname "$1") && mkdir -p "$d" && t=$(mktemp -d "$d/.styx-XXXXXX") && '
                    'tar -x -o -C "$t" -f - && mv -f "$t/$2" "$1" && rmdir "$t"'
                )
            tar = subprocess.Popen(
                ["tar", "-c", "-C", base, "-f", "-", *members],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            assert tar.stdout is not None
            try:
                argv = ["sh", "-c", script, "sh", dst, *([name] if name else [])]
                code, out, err = exec_bytes(
                    self.context,
                    self.namespace,
                    self.pod,
                    argv,
                    stdin_file=tar.stdout,
                    timeout=RSYNC_TIMEOUT_S,
                )
            finally:
                tar.stdout.close()
                tar.wait(timeout=60)
        if code != 0:
            tail = (err or out).decode(errors="replace").strip()[-300:]
            raise RemoteError(
                f"Copying {src} to {self.node_name}:{dst} failed with exit code {code}: {tail}",
            )
