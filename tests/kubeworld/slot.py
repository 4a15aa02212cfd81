"""Names and addresses of one run of the Kubernetes stand-in (it stands in for a real cluster).

Several test runs may share a machine, and network-namespace and link names are global to it, so
a run claims a slot ``s`` with a lock in ``/tmp/styx-testbed-slots/kw-{s}.lock`` and uses only:

* bridge ``styxk8s{s}`` holding ``198.19.{s}.1/24``: the API server's address (port 6443), which
  pods reach as ``KUBERNETES_SERVICE_HOST``;
* pods at ``198.19.{s}.10`` upwards (``.10`` .. ``.254``), namespaces ``styx-k{s}p{n}`` and links
  ``vk{s}p{n}`` (``n`` the last octet);
* node addresses ``198.19.{64+s}.{i}`` and service cluster IPs ``198.19.{128+s}.{i}``: names
  only, nothing answers there (there is no kube-proxy).

Only 198.18.0.0/15 and loopback, ever. Claiming a slot reaps what a killed run left in it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
from pathlib import Path

from testworld.nshost import delete_netns, ip, netns_names
from testworld.testbed import SLOT_DIR, _reap_stale

K8S_SLOTS = 16
API_PORT = 6443
FIRST_POD_OCTET = 10
LAST_POD_OCTET = 254


class KubeSlot:
    """A claim on this run's names and addresses (see the module docstring)."""

    def __init__(self, slot: int | None = None) -> None:
        self._want = slot
        self.slot = -1
        self._fd: int | None = None

    @property
    def bridge(self) -> str:
        return f"styxk8s{self.slot}"

    @property
    def gateway(self) -> str:
        """The bridge's address, where the API server listens."""
        return f"198.19.{self.slot}.1"

    @property
    def prefix_len(self) -> int:
        return 24

    def pod_ip(self, octet: int) -> str:
        return f"198.19.{self.slot}.{octet}"

    def netns(self, octet: int) -> str:
        return f"styx-k{self.slot}p{octet}"

    def veth(self, octet: int) -> str:
        return f"vk{self.slot}p{octet}"

    def node_ip(self, index: int) -> str:
        return f"198.19.{64 + self.slot}.{1 + index % 254}"

    def service_ip(self, index: int) -> str:
        return f"198.19.{128 + self.slot}.{1 + index % 254}"

    @property
    def pids_file(self) -> Path:
        return SLOT_DIR / f"kw-{self.slot}.pids"

    def claim(self) -> KubeSlot:
        SLOT_DIR.mkdir(mode=0o700, exist_ok=True)
        for slot in range(K8S_SLOTS) if self._want is None else [self._want]:
            fd = os.open(SLOT_DIR / f"kw-{slot}.lock", os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            self.slot, self._fd = slot, fd
            self.reap()
            return self
        raise RuntimeError(f"no free Kubernetes test slot (of {K8S_SLOTS}); see {SLOT_DIR}")

    def reap(self) -> None:
        """Remove pod hosts, links and the bridge of this slot that a dead run left behind."""
        _reap_stale(self.pids_file)
        prefix = f"styx-k{self.slot}p"
        for name in netns_names():
            if name.startswith(prefix):
                delete_netns(name)
        links = ip("-o", "link", "show", check=False).stdout
        for m in re.finditer(r"^\d+: ([^:@\s]+)", links, re.M):
            name = m.group(1)
            if name == self.bridge or re.fullmatch(rf"vk{self.slot}p\d+", name):
                ip("link", "del", name, check=False)

    def record_pids(self, lines: list[str]) -> None:
        """Write ``PID HOST_DIR`` lines, so that a later run can reap hosts a killed run left."""
        if self._fd is not None:
            self.pids_file.write_text("".join(line + "\n" for line in lines))

    def release(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            self.pids_file.unlink()
        os.close(self._fd)
        self._fd = None
