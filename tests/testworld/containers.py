"""The container test world: podman (with runc) on this machine and on the test hosts, images
built locally, and two local registries (Debian's docker-registry), one with a login.

No image can be pulled from a public registry here. The image is Debian 12 minbase without
Python (scripts/testimages.sh builds its root file system), imported with an env var that says
which image a job ran in. It is pushed to both registries on the testbed's bridge address, so
the hosts pull it over their network as they would from any registry. The local store (the
`infra: local` tests) and each host's store are separate, as on separate machines. Measured
recipe: ../shared/testworld/README.md ("Containers").
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .testbed import Testbed

ROOTFS = Path(os.environ.get("STYX_TESTWORLD_CACHE", "/var/cache/styx-testworld"))
IMAGE = "styx-test/nopython:bookworm"
USER, PASSWORD = "styx", "registry-pass-1"


def why_not() -> str | None:
    """Why this machine cannot run the container world (None when it can)."""
    if os.geteuid() != 0:
        return "not root"
    for tool in ("podman", "runc", "docker-registry"):
        if shutil.which(tool) is None:
            return f"no {tool} (apt-get install podman runc catatonit docker-registry)"
    if not (ROOTFS / "nopython-bookworm.complete").exists():
        return "no test image root (bash scripts/testimages.sh builds it)"
    try:
        import bcrypt  # noqa: F401  (the registry's htpasswd)
    except ImportError:
        return "no bcrypt (the test extra)"
    return None


def ensure_cgroups() -> None:
    """Inside `ip netns exec` (the suite's namespace) /sys has no cgroup mounts, and runc needs
    them: mount init's hierarchies in this process's own mount namespace."""
    if any(
        " /sys/fs/cgroup" in line for line in Path("/proc/self/mountinfo").read_text().splitlines()
    ):
        return
    here = Path(__file__).parent
    cmds = subprocess.run([str(here / "cgroups.sh")], capture_output=True, text=True, check=True)
    subprocess.run(["sh", "-ec", cmds.stdout], check=True)


CONTAINERS_CONF = """[engine]
runtime = "runc"
lock_type = "file"
cgroup_manager = "cgroupfs"
events_logger = "file"
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
netns = "host"
"""


def write_etc(etc: Path, registry_ip: str) -> Path:
    """The test hosts' /etc/containers (bound over theirs when they boot, see host_boot.sh and
    nshost.py): this machine's, with runc (crun refuses its hybrid cgroups), no systemd,
    ulimits within the hard limits, and the test registries at ``registry_ip`` as plain-HTTP
    ones. Written once; returns ``etc``."""
    if etc.is_dir():
        return etc
    tmp = etc.with_name(etc.name + ".new")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree("/etc/containers", tmp, symlinks=True)
    shutil.rmtree(tmp / "registries.conf.d", ignore_errors=True)
    (tmp / "containers.conf").write_text(CONTAINERS_CONF)
    regs = "".join(
        f'[[registry]]\nlocation = "{registry_ip}:{port}"\ninsecure = true\n'
        for port in (5000, 5001)
    )
    (tmp / "registries.conf").write_text("unqualified-search-registries = []\n" + regs)
    tmp.rename(etc)
    return etc


def private_store(root: Path) -> dict[str, str]:
    """Podman settings for a store of its own under ``root`` (not this machine's): the env
    that points podman at it."""
    storage = root / "storage.conf"
    storage.write_text(
        f'[storage]\ndriver = "overlay"\ngraphroot = "{root}/store"\nrunroot = "{root}/run"\n'
    )
    return {"CONTAINERS_STORAGE_CONF": str(storage)}


def import_image(env: dict[str, str]) -> None:
    """The test image (:data:`IMAGE`) into the store ``env`` names, from its cached root."""
    tar = subprocess.Popen(
        ["tar", "-C", str(ROOTFS / "nopython-bookworm"), "-c", "."], stdout=subprocess.PIPE
    )
    subprocess.run(
        ["podman", "import", "--change", "ENV=STYX_IMAGE=nopython-bookworm",
         "--change", "ENV=PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
         "-", IMAGE],
        stdin=tar.stdout, env={**os.environ, **env}, capture_output=True, check=True,
    )  # fmt: skip
    tar.wait()


def in_host(pids: list[int], *argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` inside a test host (any of its processes, e.g. its sshd): its mount, UTS,
    network and PID namespaces, so its podman sees its own store and /etc/containers."""
    own = os.readlink("/proc/self/ns/pid")
    inside = []  # not the host's `unshare` (in its network namespace, but not the others)
    for p in sorted(pids):
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/{p}/ns/pid") != own:
                inside.append(p)
    if not inside:
        raise AssertionError(f"no process of the host is inside its namespaces: {pids}")
    pid = inside[0]
    return subprocess.run(
        ["nsenter", "-t", str(pid), "-m", "-u", "-n", "-p", "--", *argv],
        capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip


class ContainerWorld:
    """Registries at ``registry`` (with a login) and ``open_registry`` on ``ip`` (an address of
    this machine the test hosts reach), the image in both, and ``env`` for the local podman
    (what a task on `infra: local` sees). ``etc`` is the hosts' /etc/containers."""

    def __init__(self, root: Path, ip: str, etc: Path, bed: Testbed | None = None) -> None:
        self.root = root
        self.bed = bed
        self.registry, self.open_registry = f"{ip}:5000", f"{ip}:5001"
        self.etc = write_etc(etc, ip)
        self._procs: list[subprocess.Popen[bytes]] = []
        self.env = {
            "CONTAINERS_CONF": str(self.etc / "containers.conf"),
            "CONTAINERS_REGISTRIES_CONF": str(self.etc / "registries.conf"),
            **private_store(root),
        }

    @property
    def private_image(self) -> str:
        return f"{self.registry}/{IMAGE}"

    @property
    def public_image(self) -> str:
        return f"{self.open_registry}/{IMAGE}"

    def podman(self, *args: str, check: bool = True, timeout: float = 300) -> str:
        out = subprocess.run(
            ["podman", *args],
            env={**os.environ, **self.env},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and out.returncode != 0:
            raise AssertionError(f"podman {' '.join(args)}: {out.stderr[-500:]}")
        return out.stdout

    def up(self) -> ContainerWorld:
        import bcrypt

        ensure_cgroups()
        hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=5)).decode()
        (self.root / "htpasswd").write_text(f"{USER}:{hashed}\n")
        for addr, auth in ((self.registry, True), (self.open_registry, False)):
            port = addr.rsplit(":", 1)[1]
            data = self.root / f"registry-{port}"
            data.mkdir()
            conf = self.root / f"registry-{port}.yml"
            text = (
                f"version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n"
                f"    rootdirectory: {data}\nhttp:\n  addr: {addr}\n"
            )
            if auth:
                text += (
                    f"auth:\n  htpasswd:\n    realm: styx-test\n    path: {self.root}/htpasswd\n"
                )
            conf.write_text(text)
            log = open(self.root / f"registry-{port}.log", "wb")  # noqa: SIM115
            self._procs.append(
                subprocess.Popen(["docker-registry", "serve", str(conf)], stdout=log, stderr=log)
            )
        import_image(self.env)
        self._wait_registries()
        self.podman("push", "--tls-verify=false", f"--creds={USER}:{PASSWORD}", IMAGE,
                    self.private_image)  # fmt: skip
        self.podman("push", "--tls-verify=false", IMAGE, self.public_image)
        return self

    def _wait_registries(self) -> None:
        import socket

        deadline = time.monotonic() + 20
        for addr in (self.registry, self.open_registry):
            host, port = addr.rsplit(":", 1)
            while True:
                with socket.socket() as s, contextlib.suppress(OSError):
                    s.settimeout(0.5)
                    s.connect((host, int(port)))
                    break
                if time.monotonic() > deadline:
                    raise AssertionError(f"the test registry at {addr} did not start")
                time.sleep(0.1)

    @classmethod
    def for_testbed(cls, root: Path, bed: Testbed) -> ContainerWorld:
        return cls(root, bed.bridge_ip, bed.root / "containers-etc", bed)

    def host_containers(self, i: int) -> list[str]:
        """Styx's containers on test host i of the testbed (running or not)."""
        assert self.bed is not None
        return self.containers_in(self.bed.pids(i))

    def containers_in(self, pids: list[int]) -> list[str]:
        """Styx's containers on the host of those processes (none once it is gone)."""
        if not pids:
            return []
        ps = ["podman", "ps", "-a", "--filter", "label=styx.dev/managed", "--format", "{{.Names}}"]
        return in_host(pids, *ps).stdout.split()

    def local_containers(self) -> list[str]:
        out = self.podman(
            "ps", "-a", "--filter", "label=styx.dev/managed", "--format", "{{.Names}}"
        )
        return out.split()

    def assert_no_containers(self, hosts: list[int]) -> None:
        """The leak check: no container of Styx's left here or on those hosts."""
        left = {"local": self.local_containers()}
        bed = self.bed
        if bed is not None:
            left.update({f"h{i}": self.host_containers(i) for i in hosts if bed.alive(i)})
        assert not any(left.values()), f"containers left behind: {left}"

    def down(self) -> None:
        for proc in self._procs:
            proc.terminate()
        for proc in self._procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
        with contextlib.suppress(AssertionError, subprocess.SubprocessError):
            self.podman("rm", "-a", "-f", check=False)
            self.podman("rmi", "-a", "-f", check=False, timeout=120)
