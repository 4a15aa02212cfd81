"""Real test hosts on this machine, and faults to inject into them.

A :class:`Testbed` boots ``n`` hosts ``h1..hN`` with the scripts next to this file: each host is a
network namespace on a bridge, with its own sshd (key-only, as root), hostname, HOME (/root),
/tmp and /run, and sshd as pid 1 of its own PID namespace. They share the rest of the
filesystem, like machines built from one image; folders under /root or /tmp that hosts must
still see (the Python install) are mounted read-only (``keep``).

Slot 0 is the layout of the test-world README: hosts ``styx-hI`` at ``198.18.0.1I`` on bridge
``styxbr0``. Network-namespace names are global to the machine, so a testbed first claims a
slot with a lock; when slot 0 is held by another test run it takes slot 1 (``198.18.1.0/24``),
and so on. Read addresses and names from :meth:`Testbed.host`, never hard-code them.

Works as root, both in the root network namespace and inside a loopback-only namespace such as
``styx-ci`` (the bridge then lives there). Traffic stays on loopback and 198.18.0.0/15.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
SLOT_DIR = Path("/tmp/styx-testbed-slots")
MAX_SLOTS = 32
_FAULT_TABLE = "styx_fault"


@dataclasses.dataclass(frozen=True, slots=True)
class TestHost:
    """One test host: how to reach it and where its disk lives."""

    __test__ = False  # not a pytest test class

    index: int
    name: str  # the alias in the testbed's ssh_config: h1, h2, ...
    ip: str
    user: str
    key: Path  # the private key that logs in
    port: int
    netns: str
    veth: str  # the bridge-side end of the host's link
    dir: Path  # the host's disk: root/ (its /root) and tmp/ (its /tmp)


def default_keep() -> list[str]:
    """Folders under /root or /tmp that hosts need read-only: the running Python's install,
    and the checkout (an editable install's source), so that the suite passes from a
    checkout anywhere, /tmp and /root included."""
    import styx

    checkout = str(Path(styx.__file__).resolve().parents[2])
    keep: list[str] = []
    extra = os.environ.get("STYX_TESTBED_KEEP", "").split()
    for path in (sys.base_prefix, sys.prefix, checkout, *extra):
        real = os.path.realpath(path)
        if real.startswith(("/root/", "/tmp/")) and real not in keep:
            keep.append(real)
    return keep


def usable() -> str | None:
    """Why hosts cannot be made here, or None when they can."""
    if os.geteuid() != 0:
        return "the testbed needs root (network namespaces)"
    for tool in ("ip", "unshare", "ssh", "ssh-keygen", "/usr/sbin/sshd"):
        if shutil.which(tool) is None:
            return f"the testbed needs {tool} (apt-get install openssh-server iproute2)"
    probe = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        return f"'ip netns' does not work here: {probe.stderr.strip()}"
    return None


class Testbed:
    """``n`` test hosts under ``root``; :meth:`up` boots them, :meth:`down` removes every trace.

    ``slot`` picks the addresses and names (see the module docstring); None takes the first
    free one. Faults injected with the methods below are undone by :meth:`restore`.
    """

    __test__ = False

    def __init__(
        self, root: Path, n: int, *, slot: int | None = None, keep: Sequence[str] | None = None
    ) -> None:
        self.root = Path(root).absolute()
        self.n = n
        self.keep = list(default_keep() if keep is None else keep)
        self._want_slot = slot
        self.slot = -1
        self._lock_fd: int | None = None
        self._cut: set[int] = set()
        self._walled: set[int] = set()
        self._frozen: set[int] = set()

    # --- life cycle ---------------------------------------------------------------------------

    @property
    def ssh_config(self) -> Path:
        return self.root / "ssh_config"

    @property
    def key(self) -> Path:
        return self.root / "id_ed25519"

    @property
    def known_hosts(self) -> Path:
        return self.root / "known_hosts"

    def up(self) -> Testbed:
        """Claim a slot and boot the hosts (about 0.15 s a host)."""
        if self._lock_fd is None:
            self._claim_slot()
        self.root.mkdir(parents=True, exist_ok=True)
        if shutil.which("podman") and os.path.isdir("/etc/containers"):
            from .containers import write_etc  # host_boot.sh binds it

            write_etc(self.root / "containers-etc", self.bridge_ip)
        try:
            self._script("cluster_up.sh", timeout=60 + 10 * self.n)
        except BaseException:
            self.down()
            raise
        self._record_pids()
        return self

    def down(self) -> None:
        """Kill every host, delete their namespaces, links and bridge; release the slot."""
        if self._lock_fd is None:
            return
        with contextlib.suppress(subprocess.SubprocessError, OSError, RuntimeError):
            self._script("cluster_down.sh", timeout=60)
        self._cut.clear()
        self._walled.clear()
        self._frozen.clear()
        with contextlib.suppress(OSError):
            (SLOT_DIR / f"slot-{self.slot}.pids").unlink()
        os.close(self._lock_fd)
        self._lock_fd = None

    def __enter__(self) -> Testbed:
        return self.up()

    def __exit__(self, *exc: object) -> None:
        self.down()

    # --- hosts --------------------------------------------------------------------------------

    def host(self, i: int) -> TestHost:
        """Host ``i`` (1-based)."""
        if not 1 <= i <= self.n:
            raise IndexError(f"the testbed has hosts 1..{self.n}, not {i}")
        prefix, veth = (
            ("styx-h", "vh") if self.slot == 0 else (f"styx-s{self.slot}h", f"vs{self.slot}h")
        )
        return TestHost(
            index=i,
            name=f"h{i}",
            ip=f"198.18.{self.slot}.{10 + i}",
            user="root",
            key=self.key,
            port=22,
            netns=f"{prefix}{i}",
            veth=f"{veth}{i}",
            dir=self.root / f"h{i}",
        )

    @property
    def bridge_ip(self) -> str:
        """This machine's address on the hosts' bridge (where its connections come from)."""
        return f"198.18.{self.slot}.1"

    @property
    def hosts(self) -> list[TestHost]:
        return [self.host(i) for i in range(1, self.n + 1)]

    def ssh(
        self,
        i: int,
        *argv: str,
        input: str | None = None,
        timeout: float = 60,
        options: Sequence[str] = (),
    ) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` on host ``i`` with plain ssh, the testbed's ssh_config and ``options``
        (such as ``-oConnectTimeout=1``)."""
        return subprocess.run(
            ["ssh", "-F", str(self.ssh_config), *options, "--", f"h{i}", shlex.join(argv)],
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def pids(self, i: int) -> list[int]:
        """Every process of host ``i`` (sshd included): for "nothing of ours is left" checks."""
        out = subprocess.run(
            ["ip", "netns", "pids", self.host(i).netns], capture_output=True, text=True, check=False
        )
        return [int(p) for p in out.stdout.split()]

    def alive(self, i: int) -> bool:
        """Whether host ``i`` is booted (its PID namespace lives)."""
        pid = self._host_pid(i)
        return pid is not None and _is_host_process(pid, self.host(i).dir)

    # --- faults -------------------------------------------------------------------------------

    def crash(self, i: int) -> None:
        """Power host ``i`` off at once: kill -9 its PID namespace. Its disk stays."""
        pid = self._host_pid(i)
        if pid is not None and _is_host_process(pid, self.host(i).dir):
            os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(OSError):
            (self.host(i).dir / "host.pid").unlink()
        _wait(lambda: not self.pids(i), 10, f"host {i} to die")
        self._frozen.discard(i)

    def reboot(self, i: int, *, wipe_tmp: bool = True) -> None:
        """Boot host ``i`` again (crashing it first if it runs). Like a real reboot, /tmp is
        emptied unless ``wipe_tmp`` is False; /root (its disk) stays."""
        if self.alive(i):
            self.crash(i)
        if wipe_tmp:
            tmp = self.host(i).dir / "tmp"
            for entry in tmp.iterdir():
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry)
                else:
                    entry.unlink()
        self._script("host_boot.sh", str(i), timeout=30)
        self._record_pids()

    def cut_link(self, i: int) -> None:
        """Unplug host ``i``'s cable: packets to and from it vanish, nothing is refused."""
        self._ip("link", "set", self.host(i).veth, "down")
        self._cut.add(i)

    def restore_link(self, i: int) -> None:
        self._ip("link", "set", self.host(i).veth, "up")
        self._cut.discard(i)

    def firewall_drop(self, i: int, *, port: int | None = None, source: str | None = None) -> None:
        """Host ``i`` silently drops incoming packets: all, or those to TCP ``port`` and/or
        from address ``source``."""
        match = [f"ip saddr {source}"] if source else []
        match += [f"tcp dport {port}"] if port else []
        self._firewall(i, " ".join(match or ['iifname "eth0"']) + " drop")

    def firewall_reject(self, i: int, port: int = 22) -> None:
        """Host ``i`` answers connections to TCP ``port`` with a reset."""
        self._firewall(i, f"tcp dport {port} reject with tcp reset")

    def clear_firewall(self, i: int) -> None:
        self._nft(i, f"delete table inet {_FAULT_TABLE}", check=False)
        self._walled.discard(i)

    def freeze(self, i: int) -> None:
        """SIGSTOP every process of host ``i``: it keeps its address but answers nothing."""
        self._signal_all(i, signal.SIGSTOP)
        self._frozen.add(i)

    def thaw(self, i: int) -> None:
        self._signal_all(i, signal.SIGCONT)
        self._frozen.discard(i)

    def restore(self) -> None:
        """Undo every fault: links up, firewalls cleared, hosts thawed, dead hosts rebooted
        (with /tmp wiped, as a real reboot)."""
        for i in sorted(self._cut):
            self.restore_link(i)
        for i in sorted(self._walled):
            self.clear_firewall(i)
        for i in sorted(self._frozen):
            self.thaw(i)
        for i in range(1, self.n + 1):
            if not self.alive(i):
                self.reboot(i)

    # --- helpers ------------------------------------------------------------------------------

    def _script(self, name: str, *args: str, timeout: float) -> None:
        env = {
            **os.environ,
            "STYX_TESTBED": str(self.root),
            "N": str(self.n),
            "STYX_TESTBED_SLOT": str(self.slot),
            "STYX_TESTBED_KEEP": " ".join(self.keep),
        }
        proc = subprocess.run(
            ["bash", str(HERE / name), *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"{name} {' '.join(args)} failed: {proc.stderr.strip()}")

    def _ip(self, *argv: str) -> None:
        subprocess.run(["ip", *argv], check=True, capture_output=True, text=True)

    def _nft(self, i: int, script: str, check: bool = True) -> None:
        subprocess.run(
            ["ip", "netns", "exec", self.host(i).netns, "nft", "-f", "-"],
            input=script + "\n",
            capture_output=True,
            text=True,
            check=check,
        )

    def _firewall(self, i: int, rule: str) -> None:
        self.clear_firewall(i)
        self._nft(
            i,
            f"table inet {_FAULT_TABLE} {{\n chain input {{\n"
            f"  type filter hook input priority 0; policy accept;\n  {rule}\n }}\n}}",
        )
        self._walled.add(i)

    def _signal_all(self, i: int, sig: signal.Signals) -> None:
        for pid in self.pids(i):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)

    def _host_pid(self, i: int) -> int | None:
        try:
            return int((self.host(i).dir / "host.pid").read_text().strip())
        except (OSError, ValueError):
            return None

    def _claim_slot(self) -> None:
        SLOT_DIR.mkdir(mode=0o700, exist_ok=True)
        slots: Iterable[int] = range(MAX_SLOTS) if self._want_slot is None else [self._want_slot]
        for slot in slots:
            fd = os.open(SLOT_DIR / f"slot-{slot}.lock", os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            self.slot, self._lock_fd = slot, fd
            if _reap_stale(SLOT_DIR / f"slot-{slot}.pids"):
                with contextlib.suppress(TimeoutError):
                    _wait(lambda: not any(map(self.pids, range(1, self.n + 1))), 5, "stale hosts")
            if not any(self.pids(i) for i in range(1, self.n + 1)):
                return
            # Hosts that another (unlocked) testbed runs, e.g. the README's scripts by hand.
            self._lock_fd = None
            os.close(fd)
        raise RuntimeError(f"no free testbed slot (of {MAX_SLOTS}); see {SLOT_DIR}")

    def _record_pids(self) -> None:
        lines = [
            f"{pid} {self.host(i).dir}"
            for i in range(1, self.n + 1)
            if (pid := self._host_pid(i)) is not None
        ]
        (SLOT_DIR / f"slot-{self.slot}.pids").write_text("\n".join(lines) + "\n")


def _is_host_process(pid: int, host_dir: Path) -> bool:
    """Whether ``pid`` is the unshare that runs the host with disk ``host_dir`` (not a reused pid)."""
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"unshare" in cmd and f"{host_dir}/sshd_config".encode() in cmd


def _reap_stale(pids_file: Path) -> bool:
    """Kill hosts that a test run which died without its teardown left in this slot."""
    try:
        lines = pids_file.read_text().splitlines()
    except OSError:
        return False
    killed = False
    for line in lines:
        pid, _, host_dir = line.partition(" ")
        if pid.isdigit() and _is_host_process(int(pid), Path(host_dir)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)
                killed = True
    pids_file.unlink()
    return killed


def _wait(pred: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.02)
