"""The SSH runner: commands, file sync and socket forwarding on a node, over OpenSSH.

One ControlMaster per (host, user, port, key, jump) is shared by every command, rsync and
forward, so only the first call pays for the handshake (~150-200 ms; later ones ~5-10 ms).

How failures are classified (never from stderr text alone):

- ``ssh`` exits 255 for its own failures; any other exit status is the remote command's and is
  returned in :class:`RunResult`.
- Connection setup (starting the master) that exits 255 is followed by a probe of the SSH port
  (:mod:`styx.cluster.ssh_probe`): no SSH banner means :class:`HostUnreachable` (retried a
  bounded number of times when it looks transient, such as a timeout); a banner means the server
  answered and refused us: ``RemoteError`` with code ``ssh-auth-failed``.
- A command that exits 255 while the master is still alive exited 255 itself; if the master is
  gone, the connection was lost mid-command: :class:`HostUnreachable`, never retried (the
  command may have run).

A host that cannot be reached fails within about ``(connect_retries + 1) * (connect_timeout +
probe_timeout)`` plus the backoff; a refused connection fails at once.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import posixpath
import shlex
import socket
import stat
import struct
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from styx import paths
from styx.cluster import ssh_probe
from styx.cluster.runner import RSYNC_TIMEOUT_S, RunResult
from styx.errors import HostUnreachable, RemoteError, StyxError

AUTH_FAILED = "ssh-auth-failed"
_SUN_PATH_MAX = 104  # sun_path is 108 bytes on Linux, 104 on macOS
_ENV_NAME_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")


@dataclasses.dataclass(frozen=True, slots=True)
class SSHHost:
    """How to reach one node over SSH.

    ``name`` names the node in messages and is the ssh destination when ``hostname`` is None,
    so an alias from the user's ``~/.ssh/config`` works as is (its HostName, User, Port,
    IdentityFile and ProxyJump apply). Fields left None are left to ssh's config.
    ``proxy_jump`` is another :class:`SSHHost` or a ``[user@]host[:port][,...]`` string (whose
    hops use this host's key and config file); jump hosts get the same options (batch mode,
    timeouts, known hosts) as the node, and a master of their own.
    ``options`` are extra ``-o`` settings, as (key, value) pairs.
    """

    name: str
    hostname: str | None = None
    user: str | None = None
    port: int | None = None
    identity_file: str | None = None
    proxy_jump: SSHHost | str | None = None
    ssh_config_file: str | None = None
    options: tuple[tuple[str, str], ...] = ()

    @property
    def destination(self) -> str:
        return self.hostname or self.name

    def describe(self) -> str:
        """``name`` plus, when they differ, ``user@address:port`` (for messages)."""
        where = self.destination
        if self.user:
            where = f"{self.user}@{where}"
        if self.port:
            where = f"{where}:{self.port}"
        return self.name if where == self.name else f"{self.name} ({where})"

    def jump_host(self) -> SSHHost | None:
        """``proxy_jump`` as an :class:`SSHHost` (a string chain ``a,b`` reaches b through a)."""
        if self.proxy_jump is None or isinstance(self.proxy_jump, SSHHost):
            return self.proxy_jump
        jump: SSHHost | None = None
        for spec in self.proxy_jump.split(","):
            user, _, rest = spec.strip().rpartition("@")
            host, sep, port = rest.rpartition(":") if rest.count(":") == 1 else (rest, "", "")
            jump = SSHHost(
                name=host if sep else rest,
                user=user or None,
                port=int(port) if sep else None,
                identity_file=self.identity_file,
                proxy_jump=jump,
                ssh_config_file=self.ssh_config_file,
            )
        return jump


def default_control_dir() -> Path:
    """A short per-user folder for ControlMaster sockets (their paths must stay < 100 bytes)."""
    return Path(f"/tmp/styx-ssh-{os.getuid()}")


def _private_dir(path: Path) -> Path:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
        raise RemoteError(
            f"{path} is not a private folder of this user, so SSH control sockets cannot go there.",
            "Remove it, or pass another control_dir.",
        )
    return path


def remote_command(
    argv: Sequence[str], env: Mapping[str, str] | None = None, cwd: str | None = None
) -> str:
    """The shell line that runs ``argv`` in ``cwd`` with ``env`` added, every part quoted.
    A leading ``~`` in ``cwd`` is the remote home."""
    if not argv:
        raise ValueError("argv is empty")
    words = ["exec"]
    if env:
        bad = [k for k in env if not k or k[0].isdigit() or not set(k) <= _ENV_NAME_CHARS]
        if bad:
            raise ValueError(f"invalid environment variable names: {bad}")
        words += ["env", *(shlex.quote(f"{k}={v}") for k, v in env.items())]
    words += [shlex.quote(a) for a in argv]
    line = " ".join(words)
    return f"cd {quote_remote_path(cwd)} && {line}" if cwd else line


def quote_remote_path(path: str) -> str:
    """``path`` quoted for the remote shell, leaving a leading ``~`` or ``~/`` to expand."""
    if path == "~":
        return "~"
    if path.startswith("~/"):
        return "~/" + shlex.quote(path[2:]) if path[2:] else "~/"
    return shlex.quote(path)


class SSHRunner:
    """Runs commands on one node over SSH, syncs files to it and forwards unix sockets.
    Implements the :class:`styx.cluster.runner.Runner` protocol. Thread-safe."""

    def __init__(
        self,
        host: SSHHost,
        *,
        control_dir: str | os.PathLike[str] | None = None,
        known_hosts_file: str | os.PathLike[str] | None = None,
        connect_timeout: float = 10.0,
        connect_retries: int = 2,
        retry_backoff: float = 0.5,
        probe_timeout: float = 2.0,
        server_alive_interval: int = 5,
        server_alive_count_max: int = 3,
        control_persist: int = 300,
    ) -> None:
        self.host = host
        self.node_name = host.name
        self.connect_timeout = connect_timeout
        self.connect_retries = connect_retries
        self.retry_backoff = retry_backoff
        self.probe_timeout = probe_timeout
        if host.destination.startswith("-"):
            raise ValueError(f"invalid ssh destination {host.destination!r}")
        self._dir = _private_dir(Path(control_dir) if control_dir else default_control_dir())
        known = Path(known_hosts_file) if known_hosts_file else paths.home() / "ssh" / "known_hosts"
        known.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        settings: dict[str, Any] = {
            "connect_timeout": connect_timeout,
            "connect_retries": connect_retries,
            "retry_backoff": retry_backoff,
            "probe_timeout": probe_timeout,
            "server_alive_interval": server_alive_interval,
            "server_alive_count_max": server_alive_count_max,
            "control_persist": control_persist,
        }
        jump = host.jump_host()
        self._jump: SSHRunner | None = None
        if jump is not None:
            self._jump = SSHRunner(jump, control_dir=self._dir, known_hosts_file=known, **settings)
        # One master per way of logging in: a different key or jump must not reuse it.
        via = self._jump.control_path if self._jump else None
        parts = (host.destination, host.user, host.port, host.identity_file, host.ssh_config_file)
        key = f"{parts}\0{via}\0{host.options}\0{known}".encode()
        self.control_path: str = str(self._dir / hashlib.sha256(key).hexdigest()[:20])
        if len(self.control_path) + 17 >= _SUN_PATH_MAX:  # ssh adds ".XXXXXXXXXXXXXXXX" first
            raise ValueError(f"control_dir {self._dir} is too long for unix socket paths")
        opts = _options(host, self.control_path, known, settings)
        if self._jump is not None:
            # Through the jump host's own master; "%h:%p" is the only token left for ssh.
            hop = " ".join(shlex.quote(_escape(a)) for a in self._jump.ssh_argv(mux_only=True))
            dest = shlex.quote(_escape(self._jump.host.destination))
            opts["ProxyCommand"] = f"{hop} -W %h:%p -- {dest}"
        opts.update(dict(host.options))
        self._config = ["-F", host.ssh_config_file] if host.ssh_config_file else []
        self._options = [*self._config, *(f"-o{k}={v}" for k, v in opts.items())]
        self._lock = threading.RLock()
        self._home: str | None = None
        self._forwards: dict[str, tuple[str, int | None]] = {}  # local: (remote, master pid)

    # --- the Runner protocol ------------------------------------------------------------------

    def ssh_argv(self, *, mux_only: bool = False) -> list[str]:
        """``ssh`` and its options for this node, without the destination. ``mux_only`` makes
        it use the master without ever becoming one."""
        extra = ["-oControlMaster=no"] if mux_only else []
        return ["ssh", *extra, *self._options]

    def run(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        input_text: str | None = None,
        timeout: float | None = None,
    ) -> RunResult:
        """Run ``argv`` on the node (``env`` added, in ``cwd``, ``input_text`` on stdin).
        Returns the command's exit status and output; raises HostUnreachable when the node
        cannot be reached, the connection is lost or ``timeout`` passes (the remote command is
        then left to end by itself), RemoteError(ssh-auth-failed) when it refuses us."""
        command = remote_command(argv, env, cwd)
        self.connect()
        argv0 = argv[0]
        try:
            proc = subprocess.run(
                [*self.ssh_argv(), "--", self.host.destination, command],
                input=input_text,
                stdin=None if input_text is not None else subprocess.DEVNULL,
                capture_output=True,
                text=True,
                errors="replace",
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as e:
            raise HostUnreachable(
                f"{argv0!r} on {self.node_name} did not finish in {timeout:.0f} s."
            ) from e
        if proc.returncode == 255 and not self.master_alive():
            raise self._lost(f"running {argv0!r}", proc.stderr)
        return RunResult(proc.returncode, proc.stdout, proc.stderr)

    def rsync_up(
        self, src: str, dst: str, *, filter_args: Sequence[str] = (), delete: bool = False
    ) -> None:
        """Copy ``src`` (a folder's contents, or a file) to ``dst`` on the node with
        ``rsync -a`` (``--delete`` too with ``delete``: a mirror), through the master;
        ``dst``'s parent is created and a leading ``~`` is the remote home."""
        self.connect()
        dst = self.expand_home(dst)
        parent = posixpath.dirname(dst.rstrip("/"))
        if parent:
            self.run(["mkdir", "-p", parent]).check(f"mkdir -p {parent} on {self.node_name}")
        src_arg = src.rstrip("/") + "/" if os.path.isdir(src) else src
        rsh = shlex.join(self.ssh_argv(mux_only=True))
        deleting = ["--delete"] if delete else []
        argv = ["rsync", "-a", *deleting, *filter_args, "-e", rsh, "--", src_arg]
        argv.append(f"{self.host.destination}:{dst}")
        try:
            proc = subprocess.run(
                argv,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                errors="replace",
                timeout=RSYNC_TIMEOUT_S,
            )
        except FileNotFoundError as e:
            raise RemoteError("rsync is not installed here.", "Install rsync.") from e
        except subprocess.TimeoutExpired as e:
            raise HostUnreachable(
                f"Copying {src} to {self.node_name} did not finish in {RSYNC_TIMEOUT_S:.0f} s.",
                "Check the link to the node, or copy less data (a bucket mount, for one).",
            ) from e
        if proc.returncode != 0:
            if not self.master_alive():
                raise self._lost(f"rsync of {src}", proc.stderr)
            RunResult(proc.returncode, proc.stdout, proc.stderr).check(
                f"rsync {src} -> {self.node_name}:{dst}"
            )

    # --- the connection -----------------------------------------------------------------------

    def master_alive(self) -> bool:
        """Whether this node's ControlMaster is up (a connect to its socket, no ssh spawned)."""
        return self._master_pid() is not None

    def _master_pid(self) -> int | None:
        """An id of the live master: the pid that opened its socket (with ControlPersist, the
        ssh that forked it), 0 where the OS does not say; None when no master answers."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            try:
                s.connect(self.control_path)
            except OSError:
                return None
            if not hasattr(socket, "SO_PEERCRED"):
                return 0
            creds = s.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
            return int(struct.unpack("3i", creds)[0])

    def connect(self) -> None:
        """Start the ControlMaster unless it runs; classify a failure (see the module doc)."""
        if self.master_alive():
            return
        with self._lock:
            if self.master_alive():
                return
            if self._jump is not None:
                try:
                    self._jump.connect()
                except StyxError as e:
                    raise type(e)(
                        f"Cannot reach {self.host.describe()} through jump host "
                        f"{self._jump.node_name}: {e.message}",
                        e.hint,
                        code=e.code,
                        details={"host": self.node_name, "jump": self._jump.node_name},
                    ) from e
            self._start_master()

    def _start_master(self) -> None:
        started = time.monotonic()
        with contextlib.suppress(FileNotFoundError):  # a master killed -9 leaves its socket
            os.unlink(self.control_path)
        for attempt in range(self.connect_retries + 1):
            rc, err = self._ssh_true()
            if rc == 0:
                return
            if rc != 255:
                raise RemoteError(
                    f"The login shell on {self.host.describe()} failed (exit {rc}): "
                    f"{_tail(err) or 'no output'}.",
                    "Check the remote user's shell and its startup files.",
                )
            probe = self._probe()
            if probe.banner:
                raise RemoteError(
                    f"SSH to {self.host.describe()} failed after its server answered: the key, "
                    f"user or host key was refused ({_tail(err) or 'ssh said nothing'}).",
                    "Check the user, the key (IdentityFile) and the known_hosts entry.",
                    code=AUTH_FAILED,
                    details={"host": self.node_name},
                )
            if not probe.retryable or attempt == self.connect_retries:
                tries = f"{attempt + 1} attempts" if attempt else "1 attempt"
                raise HostUnreachable(
                    f"Cannot reach {self.host.describe()} over SSH: {probe.cause} "
                    f"({tries} in {time.monotonic() - started:.1f} s).",
                    details={"host": self.node_name, "cause": probe.cause},
                )
            time.sleep(self.retry_backoff * 2**attempt)

    def _ssh_true(self) -> tuple[int, str]:
        # ControlPersist detaches the master with its stdio on /dev/null, so pipes close.
        limit = 2 * self.connect_timeout + 10  # the handshake after the banner has no timeout
        try:
            proc = subprocess.run(
                [*self.ssh_argv(), "--", self.host.destination, "true"],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                errors="replace",
                timeout=limit,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return 255, f"the SSH handshake did not finish in {limit:.0f} s"
        except FileNotFoundError as e:
            raise RemoteError(
                "The ssh client is not installed.", "Install OpenSSH (openssh-client)."
            ) from e
        return proc.returncode, proc.stderr

    def _probe(self) -> ssh_probe.Probe:
        host, port, proxy_jump, proxy_command = self._resolve()
        if self._jump is not None:
            stream = [*self._jump.ssh_argv(mux_only=True), "-W", f"{host}:{port}", "--"]
            return ssh_probe.probe_command(
                [*stream, self._jump.host.destination],
                self.probe_timeout,
                f"{host}:{port} through {self._jump.node_name}",
            )
        if proxy_jump:
            hops = proxy_jump.split(",")
            argv = ["ssh", *self._config]
            argv += ["-oBatchMode=yes", f"-oConnectTimeout={max(1, round(self.probe_timeout))}"]
            argv += [*(["-J", ",".join(hops[:-1])] if hops[:-1] else []), "-W", f"{host}:{port}"]
            return ssh_probe.probe_command(
                [*argv, "--", hops[-1]], self.probe_timeout, f"jump {proxy_jump}"
            )
        if proxy_command:
            tokens = {"%h": host, "%p": str(port), "%r": self.host.user or "", "%n": self.host.name}
            line = _expand_tokens(proxy_command, tokens)
            return ssh_probe.probe_command(["sh", "-c", line], self.probe_timeout, "ProxyCommand")
        return ssh_probe.probe_tcp(host, port, self.probe_timeout)

    def _resolve(self) -> tuple[str, int, str | None, str | None]:
        """Where ssh would connect: hostname, port, ProxyJump, ProxyCommand (``ssh -G``)."""
        out = subprocess.run(
            [*self.ssh_argv(), "-G", "--", self.host.destination],
            capture_output=True,
            text=True,
            check=False,
        ).stdout
        conf: dict[str, str] = {}
        for line in out.splitlines():
            key, _, value = line.partition(" ")
            conf.setdefault(key.lower(), value)
        host = conf.get("hostname", self.host.destination)
        port = int(conf.get("port", self.host.port or 22))
        jump = conf.get("proxyjump")
        command = conf.get("proxycommand")
        return (
            host,
            port,
            None if jump in (None, "none") else jump,
            (None if command in (None, "none") else command),
        )

    def _lost(self, what: str, stderr: str) -> HostUnreachable:
        probe = self._probe()
        cause = "the connection was lost" if probe.banner else probe.cause
        return HostUnreachable(
            f"Lost the SSH connection to {self.host.describe()} while {what}: {cause}"
            f"{f' ({_tail(stderr)})' if _tail(stderr) else ''}.",
            details={"host": self.node_name, "cause": cause},
        )

    # --- home, forwards, close ----------------------------------------------------------------

    def remote_home(self) -> str:
        """The remote user's HOME (asked once, then cached)."""
        if self._home is None:
            res = self.run(["printenv", "HOME"]).check(f"printenv HOME on {self.node_name}")
            self._home = res.stdout.strip()
        return self._home

    def expand_home(self, path: str) -> str:
        """``path`` with a leading ``~`` replaced by the remote home."""
        if path == "~" or path.startswith("~/"):
            return self.remote_home() + path[1:]
        return path

    def forward_unix_socket(self, local_path: str, remote_path: str) -> str:
        """Make ``local_path`` a unix socket that reaches ``remote_path`` on the node, through
        the master (``ssh -O forward``). Idempotent; returns ``local_path``."""
        remote = self.expand_home(remote_path)
        if ":" in local_path or ":" in remote:
            raise ValueError("socket paths for forwarding cannot contain ':'")
        with self._lock:
            self.connect()
            master = self._master_pid()
            # Still forwarded only if the very master that made the forward still serves.
            if self._forwards.get(local_path) == (remote, master) and _is_socket(local_path):
                return local_path
            if local_path in self._forwards:
                old, _ = self._forwards.pop(local_path)
                self._control("cancel", "-L", f"{local_path}:{old}")
            else:
                # The shared master may still hold this forward from another process whose
                # socket file is gone (`styx down` removes it): a new forward would then be a
                # no-op with no file. Cancelling first is harmless when there is none.
                self._control("cancel", "-L", f"{local_path}:{remote}")
            proc = self._control("forward", "-L", f"{local_path}:{remote}")
            if proc.returncode != 0:
                if not self.master_alive():
                    raise self._lost(f"forwarding {remote}", proc.stderr)
                raise RemoteError(
                    f"Cannot forward {local_path} to {remote} on {self.node_name}: "
                    f"{_tail(proc.stderr) or 'ssh said nothing'}.",
                    "Check that the local folder exists and is writable.",
                )
            self._forwards[local_path] = (remote, master)
            return local_path

    def cancel_forward(self, local_path: str, remote_path: str | None = None) -> None:
        """Stop forwarding ``local_path`` (no-op if it is not forwarded) and remove it. With
        ``remote_path``, also a forward that another process made through the shared master."""
        with self._lock:
            forward = self._forwards.pop(local_path, None)
            if (forward or remote_path) and self.master_alive():
                remote = forward[0] if forward else self.expand_home(str(remote_path))
                self._control("cancel", "-L", f"{local_path}:{remote}")
            if _is_socket(local_path):
                os.unlink(local_path)

    @property
    def jump(self) -> SSHRunner | None:
        """The runner of the jump host, if any (its master is shared by every node behind it)."""
        return self._jump

    def close(self) -> None:
        """Stop this node's master, and with it every forward. Runners of the same node share
        the master; a jump host's master is left to end ControlPersist seconds after its last
        tunnel closes (close ``runner.jump`` to end it now)."""
        with self._lock:
            if self.master_alive():
                self._control("exit")
            for local in list(self._forwards):
                self._forwards.pop(local)
                if _is_socket(local):
                    os.unlink(local)

    def __enter__(self) -> SSHRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _control(self, op: str, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self.ssh_argv(), "-O", op, *args, "--", self.host.destination],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )


# --- fan-out --------------------------------------------------------------------------------

R = TypeVar("R")
T = TypeVar("T")


def run_parallel(
    runners: Sequence[R], fn: Callable[[R], T], max_workers: int | None = None
) -> list[T | Exception]:
    """``fn(runner)`` for every runner at once (threads); the results in the runners' order,
    an exception in place of the result for each runner where ``fn`` raised."""
    if not runners:
        return []
    workers = max(1, min(len(runners), max_workers or 32))
    out: list[T | Exception] = []
    with ThreadPoolExecutor(workers, thread_name_prefix="styx-ssh") as pool:
        for future in [pool.submit(fn, r) for r in runners]:
            exc = future.exception()
            if exc is not None and not isinstance(exc, Exception):
                raise exc  # KeyboardInterrupt and friends are not a host's failure
            out.append(exc if exc is not None else future.result())
    return out


def raise_for_failures(names: Sequence[str], results: Sequence[object], what: str) -> None:
    """Raise one error naming every node whose result is an exception: HostUnreachable when
    all of them are, else RemoteError."""
    failed = [(n, r) for n, r in zip(names, results, strict=True) if isinstance(r, Exception)]
    if not failed:
        return
    each = "; ".join(f"{n}: {getattr(r, 'message', None) or r}" for n, r in failed)
    details = {"failed_nodes": [n for n, _ in failed]}
    if all(isinstance(r, HostUnreachable) for _, r in failed):
        raise HostUnreachable(
            f"{what} failed on {len(failed)} of {len(names)} nodes: {each}", details=details
        )
    raise RemoteError(
        f"{what} failed on {len(failed)} of {len(names)} nodes: {each}", details=details
    )


# --- helpers --------------------------------------------------------------------------------


def _options(
    host: SSHHost, control_path: str, known_hosts: Path, settings: Mapping[str, float]
) -> dict[str, str]:
    """The ``-o`` settings every ssh of this node gets (ssh takes the first value it sees)."""
    opts = {
        "ControlMaster": "auto",
        "ControlPath": control_path,
        "ControlPersist": f"{int(settings['control_persist'])}s",
        "ConnectTimeout": str(max(1, round(settings["connect_timeout"]))),
        "ServerAliveInterval": str(int(settings["server_alive_interval"])),
        "ServerAliveCountMax": str(int(settings["server_alive_count_max"])),
        "BatchMode": "yes",
        "StrictHostKeyChecking": "accept-new",
        "UserKnownHostsFile": _escape(str(known_hosts)),
        "LogLevel": "ERROR",
        "StreamLocalBindUnlink": "yes",  # a forward replaces a stale socket file
    }
    if host.user:
        opts["User"] = host.user
    if host.port:
        opts["Port"] = str(host.port)
    if host.identity_file:
        opts["IdentityFile"] = _escape(host.identity_file)
        opts["IdentitiesOnly"] = "yes"
    return opts


def _escape(value: str) -> str:
    """``value`` with ssh's ``%`` tokens disarmed (paths and ProxyCommand parts)."""
    return value.replace("%", "%%")


def _expand_tokens(template: str, tokens: Mapping[str, str]) -> str:
    out, i = [], 0
    while i < len(template):
        pair = template[i : i + 2]
        if pair == "%%":
            out.append("%")
        elif pair in tokens:
            out.append(tokens[pair])
        else:
            out.append(template[i])
            i += 1
            continue
        i += 2
    return "".join(out)


def _is_socket(path: str) -> bool:
    try:
        return stat.S_ISSOCK(os.lstat(path).st_mode)
    except OSError:
        return False


def _tail(text: str) -> str:
    return " | ".join(text.strip().splitlines()[-2:])
