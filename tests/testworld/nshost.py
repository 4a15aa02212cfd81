"""One test host at any address: the building block for hosts that a cloud emulator asks for.

:class:`Testbed` boots hosts at fixed addresses (``198.18.k.1I``). A cloud harness needs hosts at
the addresses the emulator hands out (an EC2 instance's private IP), made and killed one at a
time. :class:`NsHost` is such a host, built like the testbed's: a network namespace with one
veth (``eth0``) on a :class:`Bridge`, its own sshd (root, key-only), hostname, ``/root`` (its
disk, kept across boots), ``/tmp`` and ``/run``, and sshd as pid 1 of its own PID namespace, so
that one ``kill -9`` is a power cut. Folders under /root or /tmp that it must still see (the
Python install) are mounted read-only (``keep``, default :func:`testbed.default_keep`).

Addresses must lie in 198.18.0.0/15 (the test world's network rule); names must be unique on the
machine (network-namespace names are global), so callers put a slot number in them.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import shlex
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from testworld.testbed import default_keep

TEST_NET = ipaddress.ip_network("198.18.0.0/15")

_SSHD_CONFIG = """\
ListenAddress {ip}:22
HostKey {dir}/ssh_host_ed25519_key
PidFile {dir}/sshd.pid
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
PermitRootLogin prohibit-password
AuthorizedKeysFile .ssh/authorized_keys
StrictModes no
PrintMotd no
Subsystem sftp internal-sftp
MaxStartups 200:30:400
MaxSessions 200
ClientAliveInterval 5
ClientAliveCountMax 3
"""


def ip(
    *argv: str, check: bool = True, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    """``ip ARGV`` (raises with ip's message when ``check`` and it fails)."""
    proc = subprocess.run(
        ["ip", *argv], input=input, capture_output=True, text=True, check=False, timeout=30
    )
    if check and proc.returncode != 0:
        raise RuntimeError(f"ip {' '.join(argv)}: {proc.stderr.strip() or proc.returncode}")
    return proc


def netns_names() -> list[str]:
    """The names ``ip netns list`` knows (dead names included)."""
    out = ip("netns", "list", check=False).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def netns_pids(netns: str) -> list[int]:
    out = ip("netns", "pids", netns, check=False).stdout
    return [int(p) for p in out.split() if p.isdigit()]


def delete_netns(netns: str, veth: str | None = None, *, timeout: float = 5) -> None:
    """Kill every process in ``netns``, drop ``veth`` now (not when the kernel gets round to the
    namespace) and delete the namespace (or its dead name)."""
    if veth:
        ip("link", "del", veth, check=False)
    if netns not in netns_names():
        return
    deadline = time.monotonic() + timeout
    while (pids := netns_pids(netns)) and time.monotonic() < deadline:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.05)
    if ip("netns", "del", netns, check=False).returncode != 0:
        with contextlib.suppress(OSError):
            os.unlink(f"/run/netns/{netns}")


class Bridge:
    """A bridge in this network namespace with gateway addresses (``198.18.200.1/24``) added as
    subnets come into use; :meth:`remove` deletes it with every address."""

    def __init__(self, name: str) -> None:
        if len(name) > 15:
            raise ValueError(f"interface names have at most 15 characters: {name!r}")
        self.name = name
        self._addresses: set[str] = set()

    def ensure(self) -> Bridge:
        if ip("link", "show", self.name, check=False).returncode != 0:
            ip("link", "add", self.name, "type", "bridge")
        ip("link", "set", self.name, "up")
        return self

    def add_address(self, iface: str) -> None:
        """Add ``iface`` (``ADDR/PREFIX`` in 198.18.0.0/15) unless the bridge has it."""
        addr = ipaddress.ip_interface(iface)
        if not addr.network.subnet_of(TEST_NET):
            raise ValueError(f"{iface} is outside {TEST_NET}: the network rule forbids it")
        if str(addr) in self._addresses:
            return
        have = ip("-o", "addr", "show", "dev", self.name, check=False).stdout
        if f" {addr} " not in have:
            ip("addr", "add", str(addr), "dev", self.name)
        self._addresses.add(str(addr))

    @property
    def addresses(self) -> set[str]:
        return set(self._addresses)

    def remove(self) -> None:
        ip("link", "del", self.name, check=False)
        self._addresses.clear()


class NsHost:
    """A host at ``address`` (``IP/PREFIX``; the prefix is the on-link network, e.g. the VPC's)
    in namespace ``netns``, plugged into ``bridge`` by ``veth``, with its disk in ``dir``.

    :meth:`plug` makes the network, :meth:`boot` starts it, :meth:`wait_ready` waits for sshd,
    :meth:`kill` powers it off (network and disk stay), :meth:`unplug` removes the network.
    """

    def __init__(
        self,
        *,
        dir: Path,
        address: str,
        netns: str,
        veth: str,
        bridge: str,
        hostname: str,
        keep: Sequence[str] | None = None,
        containers_etc: Path | None = None,
    ) -> None:
        iface = ipaddress.ip_interface(address)
        if iface.ip not in TEST_NET:
            raise ValueError(f"{iface.ip} is outside {TEST_NET}: the network rule forbids it")
        if len(veth) > 15:
            raise ValueError(f"interface names have at most 15 characters: {veth!r}")
        self.dir = Path(dir).absolute()
        self.iface = iface
        self.ip = str(iface.ip)
        self.netns = netns
        self.veth = veth
        self.bridge = bridge
        self.hostname = hostname
        self.keep = list(default_keep() if keep is None else keep)
        self.containers_etc = containers_etc
        self._proc: subprocess.Popen[bytes] | None = None

    # --- disk -----------------------------------------------------------------------------------

    def prepare(self, authorized_keys: Iterable[str]) -> None:
        """Make the disk (kept if it exists: /root survives reboots), host key, sshd config,
        and write ``authorized_keys`` for root."""
        d = self.dir
        (d / "root" / ".ssh").mkdir(parents=True, exist_ok=True)
        (d / "tmp").mkdir(exist_ok=True)
        os.chmod(d / "root", 0o700)
        os.chmod(d / "root" / ".ssh", 0o700)
        os.chmod(d / "tmp", 0o1777)
        keys = "".join(k.strip() + "\n" for k in authorized_keys if k.strip())
        (d / "root" / ".ssh" / "authorized_keys").write_text(keys)
        if not (d / "ssh_host_ed25519_key").exists():
            subprocess.run(
                [
                    "ssh-keygen",
                    "-q",
                    "-t",
                    "ed25519",
                    "-N",
                    "",
                    "-C",
                    self.hostname,
                    "-f",
                    str(d / "ssh_host_ed25519_key"),
                ],
                check=True,
                capture_output=True,
            )
        (d / "sshd_config").write_text(_SSHD_CONFIG.format(ip=self.ip, dir=d))

    def wipe_tmp(self) -> None:
        """Empty the host's /tmp, as a reboot does."""
        tmp = self.dir / "tmp"
        if not tmp.is_dir():
            return
        for entry in tmp.iterdir():
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    entry.unlink()

    # --- network --------------------------------------------------------------------------------

    def plug(self) -> None:
        """Create the namespace and its link (replacing a stale one of the same name)."""
        if self.netns in netns_names():
            delete_netns(self.netns, self.veth)
        ip("link", "del", self.veth, check=False)
        ns, v = self.netns, self.veth
        outside = [
            f"netns add {ns}",
            f"link add {v} type veth peer name eth0 netns {ns}",
            f"link set {v} master {self.bridge} up",
        ]
        inside = [f"addr add {self.iface} dev eth0", "link set lo up", "link set eth0 up"]
        ip("-batch", "-", input="\n".join(outside) + "\n")
        ip("-n", ns, "-batch", "-", input="\n".join(inside) + "\n")

    def unplug(self) -> None:
        """Remove the namespace and link (kills anything still in it)."""
        delete_netns(self.netns, self.veth)

    def set_link(self, up: bool) -> None:
        """Plug the cable in or pull it out (the namespace stays)."""
        ip("link", "set", self.veth, "up" if up else "down")

    # --- power ----------------------------------------------------------------------------------

    def boot(self) -> int:
        """Start the host (its network must be plugged); returns the pid whose death kills it."""
        d = self.dir
        init = [f"hostname {shlex.quote(self.hostname)}"]
        init.append("mount -t tmpfs -o mode=755 tmpfs /run && mkdir -m 755 /run/sshd")
        for k in self.keep:
            if os.path.isdir(k):
                init.append(
                    f"mkdir -p {d}{k} && mount --bind {k} {d}{k} && mount -o remount,bind,ro {d}{k}"
                )
        # A container runtime needs init's cgroup hierarchies (ip netns exec hides them), and
        # with ``containers_etc`` the test world's /etc/containers and a store on the disk.
        here = Path(__file__).parent
        cgroups = subprocess.run([str(here / "cgroups.sh")], capture_output=True, text=True)
        init += [f"{{ {ln}; }} || true" for ln in cgroups.stdout.splitlines() if ln.strip()]
        if self.containers_etc is not None:
            init.append(f"mount --bind {self.containers_etc} /etc/containers")
            init.append(
                f"mkdir -p {d}/containers /var/lib/containers && "
                f"mount --bind {d}/containers /var/lib/containers"
            )
        init.append(f"mount --rbind {d}/root /root")
        if str(d).startswith("/tmp/"):  # the host's own files stay visible after /tmp is replaced
            rel = str(d)[len("/tmp/") :]
            init.append(f"mkdir -p {d}/tmp/{rel} && mount --bind {d} {d}/tmp/{rel}")
        init.append(f"mount --rbind {d}/tmp /tmp")
        script = (
            "set -e\n"
            + "\n".join(init)
            + f"\nexec /usr/sbin/sshd -D -f {d}/sshd_config -E {d}/sshd.log"
        )
        argv = ["ip", "netns", "exec", self.netns, "unshare", "--mount", "--uts", "--pid"]
        argv += ["--fork", "--kill-child", "--mount-proc", "--propagation", "private"]
        argv += ["sh", "-c", script]
        with open(d / "boot.log", "ab") as log:
            self._proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
            )
        (d / "host.pid").write_text(f"{self._proc.pid}\n")
        return self._proc.pid

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def ready(self) -> bool:
        """Whether sshd accepts connections (probed from this namespace, over the bridge)."""
        try:
            with socket.create_connection((self.ip, 22), timeout=0.5):
                return True
        except OSError:
            return False

    def wait_ready(self, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while not self.ready():
            if not self.running():
                raise RuntimeError(
                    f"host {self.hostname} ({self.ip}) died while booting: {self.log_tail()}"
                )
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"host {self.hostname} ({self.ip}): sshd not up: {self.log_tail()}"
                )
            time.sleep(0.02)

    def pids(self) -> list[int]:
        """Every process of the host (sshd and whatever logged in)."""
        return netns_pids(self.netns) if self.netns in netns_names() else []

    def kill(self, timeout: float = 5) -> None:
        """Power off at once: SIGKILL the PID namespace, wait until none of its processes is left.
        The network and the disk stay."""
        if self._proc is not None:
            with contextlib.suppress(ProcessLookupError):
                self._proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(timeout)
        with contextlib.suppress(OSError):
            (self.dir / "host.pid").unlink()
        deadline = time.monotonic() + timeout
        while (pids := self.pids()) and time.monotonic() < deadline:
            for pid in pids:  # anything that left the PID namespace but not the network one
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.02)

    def log_tail(self, n: int = 400) -> str:
        parts = []
        for name in ("boot.log", "sshd.log"):
            with contextlib.suppress(OSError):
                parts.append(
                    f"{name}: " + (self.dir / name).read_text(errors="replace")[-n:].strip()
                )
        return "; ".join(parts)
