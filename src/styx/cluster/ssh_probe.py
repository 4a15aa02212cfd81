"""Is an SSH server there? The probe behind the SSH runner's failure classification.

When ``ssh`` exits 255 (its own failure), the runner asks one question that needs no stderr
text: does the host's port answer with an SSH banner (``SSH-2.0-...``) within a short time?

- no TCP connection, or a connection but no banner (a frozen or overloaded host): the host is
  unreachable, and the probe says why (refused, no answer, ...);
- a banner: an SSH server is there and talking, so the failure came after it: the key, the user
  or the host key was refused.

The probe reaches the port the way ssh does: directly over TCP, or through a stream command
(``ssh -W host:port jump`` for a jump host, or the user's ProxyCommand).
"""

from __future__ import annotations

import dataclasses
import errno
import os
import select
import socket
import subprocess
import time
from collections.abc import Sequence


@dataclasses.dataclass(frozen=True, slots=True)
class Probe:
    """What the probe found. ``banner`` is True when an SSH server answered."""

    banner: bool
    cause: str  # why not, in words, when there was no banner
    retryable: bool  # whether trying again soon may help (timeouts yes, refusals no)


def probe_tcp(host: str, port: int, timeout: float) -> Probe:
    """Connect to ``host:port`` and wait for an SSH banner, all within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except socket.gaierror as e:
        return Probe(False, f"the name {host!r} does not resolve ({e.strerror})", False)
    except TimeoutError:
        return Probe(False, f"no answer from {host}:{port} within {timeout:g} s", True)
    except ConnectionRefusedError:
        return Probe(False, f"{host}:{port} refused the connection (no SSH server there)", False)
    except OSError as e:
        final = e.errno in (errno.ENETUNREACH, errno.EADDRNOTAVAIL)
        return Probe(False, f"cannot connect to {host}:{port}: {e.strerror or e}", not final)
    with sock:
        return _read_banner(_SocketStream(sock), deadline, f"{host}:{port}")


def probe_command(argv: Sequence[str], timeout: float, via: str) -> Probe:
    """Start ``argv`` (a stream to the SSH port, such as ``ssh -W host:port jump``) and wait for
    an SSH banner on its stdout within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    try:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
    except OSError as e:
        return Probe(False, f"cannot start {argv[0]!r} to go {via}: {e.strerror or e}", False)
    try:
        probe = _read_banner(_ProcStream(proc), deadline, via)
    finally:
        proc.kill()
        _, err = proc.communicate()
    if probe.banner or not err.strip():
        return probe
    last = err.decode(errors="replace").strip().splitlines()[-1]
    return dataclasses.replace(probe, cause=f"{probe.cause} ({last})")


class _SocketStream:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def fileno(self) -> int:
        return self.sock.fileno()

    def read(self) -> bytes:
        try:
            return self.sock.recv(256)
        except OSError:
            return b""


class _ProcStream:
    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        self.out = proc.stdout

    def fileno(self) -> int:
        return self.out.fileno()

    def read(self) -> bytes:
        return os.read(self.out.fileno(), 256)


def _read_banner(stream: _SocketStream | _ProcStream, deadline: float, where: str) -> Probe:
    data = b""
    while len(data) < 8192:
        # Servers may send text lines before the banner (RFC 4253 4.2); the banner starts "SSH-".
        lines = data.split(b"\n")
        if any(line.startswith(b"SSH-") for line in lines):
            return Probe(True, "", False)
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([stream], [], [], left)[0]:
            return Probe(
                False,
                f"{where} accepts connections but sends no SSH banner (frozen or overloaded?)",
                True,
            )
        chunk = stream.read()
        if not chunk:
            if data:
                return Probe(False, f"{where} answers, but not as an SSH server", False)
            return Probe(False, f"{where} closed the connection before the SSH banner", True)
        data += chunk
    return Probe(False, f"{where} answers, but not as an SSH server", False)
