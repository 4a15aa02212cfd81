"""Real SSH hosts behind :class:`testworld.gce.GCEServer`'s instances.

:class:`GceHosts` subscribes to the stand-in's instance events (it is in-process, so nothing
polls) and keeps one :class:`testworld.nshost.NsHost` per instance:

* RUNNING (after insert or start): a host boots at the instance's internal IP
  (``networkInterfaces[0].networkIP``) with sshd as root. Root's authorized keys: every key of
  the instance's ``ssh-keys`` metadata (any ``user:`` prefix; hosts only have root, so log in as
  root), the project's ``ssh-keys`` unless the instance sets ``block-project-ssh-keys``, and the
  harness's own key (:meth:`GceHosts.ssh`). Later metadata changes rewrite the keys, as the guest
  agent does. The host's namespace is plugged into the slot's bridge, which holds the ``.1`` of
  every subnet in use; its address has the prefix of the smallest network covering all subnets
  of its VPC network, so hosts in different regions of one network reach each other.
* stop and preemption: powered off and unplugged before the operation is DONE; the disk
  (``/root``, the host key) stays. Started again: a fresh boot at the same IP, ``/tmp`` wiped.
* delete (or :meth:`GCEServer.reset`): host and disk removed, before the operation is DONE.
* ``instances.reset``: an OS reboot (``/tmp`` wiped, ``/root`` kept).
* :meth:`GceHosts.crash`: a power cut the API does not see (still RUNNING); a stop/start or
  ``reset`` brings the host back.

Names (slot ``s``, claimed with a lock in /tmp/styx-testbed-slots/, see :class:`GceSlot`):
bridge ``styxgce{s}``, namespaces ``styx-g{s}h{n}``, links ``vg{s}h{n}``; the default network's
subnets are 198.18.(96+8s+j).0/24. None of these can clash with tests/aws (``styxaws*``,
``styx-a*``, 198.18.200-255), the testbed (``styx-h*``, ``styx-s*``, 198.18.k.0/24 for small
k) or the kube world (``styx-k*``, 198.19.x). A killed run leaves hosts behind; the next claim
of the slot reaps them.

Typical use::

    with gce_world(tmp_path) as (gce, hosts):      # slot claimed, server started, hosts attached
        ... the code under test talks to gce.url ...
        hosts.wait_up(["node-1"]); hosts.ssh("node-1", "hostname")

Needs root, ``ip netns`` and sshd (:func:`testworld.testbed.usable` says why not).
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import ipaddress
import os
import queue
import re
import shlex
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from testworld.gce import GCE_SLOTS, TEST_NET, GCEServer, slot_auto_pool, slot_regions
from testworld.nshost import Bridge, NsHost, delete_netns, ip, netns_names, netns_pids
from testworld.testbed import SLOT_DIR, _reap_stale

SSH_OPTIONS = (
    "-oIdentitiesOnly=yes",
    "-oBatchMode=yes",
    "-oStrictHostKeyChecking=no",
    "-oUserKnownHostsFile=/dev/null",
    "-oLogLevel=ERROR",
    "-oConnectTimeout=5",
)


class GceSlot:
    """A claim on names and addresses no other run on this machine uses meanwhile."""

    def __init__(self, slot: int | None = None) -> None:
        self._want = slot
        self.slot = -1
        self._fd: int | None = None

    @property
    def bridge(self) -> str:
        return f"styxgce{self.slot}"

    @property
    def netns_prefix(self) -> str:
        return f"styx-g{self.slot}h"

    @property
    def veth_prefix(self) -> str:
        return f"vg{self.slot}h"

    @property
    def pids_file(self) -> Path:
        return SLOT_DIR / f"gce-{self.slot}.pids"

    @property
    def network(self) -> ipaddress.IPv4Network:
        """The /21 this slot's subnets lie in."""
        first = ipaddress.ip_network(next(iter(slot_regions(self.slot).values())))
        return first.supernet(new_prefix=21)  # type: ignore[return-value]

    def regions(self, names: Sequence[str] | None = None) -> dict[str, str]:
        """Region -> subnet CIDR for ``GCEServer(regions=...)``."""
        return slot_regions(self.slot) if names is None else slot_regions(self.slot, names)

    def auto_pool(self) -> list[str]:
        return slot_auto_pool(self.slot)

    def claim(self) -> GceSlot:
        SLOT_DIR.mkdir(mode=0o700, exist_ok=True)
        for slot in range(GCE_SLOTS) if self._want is None else [self._want]:
            fd = os.open(SLOT_DIR / f"gce-{slot}.lock", os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            self.slot, self._fd = slot, fd
            self.reap()
            return self
        raise RuntimeError(f"no free GCE test slot (of {GCE_SLOTS}); see {SLOT_DIR}")

    def reap(self) -> None:
        """Remove hosts, links and the bridge of this slot that a dead run left behind."""
        _reap_stale(self.pids_file)
        for name in netns_names():
            if name.startswith(self.netns_prefix):
                delete_netns(name)
        for link in self.links():
            ip("link", "del", link, check=False)

    def links(self) -> list[str]:
        """This slot's links that exist now (its veths and bridge)."""
        out = ip("-o", "link", "show", check=False).stdout
        names = [m.group(1) for m in re.finditer(r"^\d+: ([^:@\s]+)", out, re.M)]
        return [n for n in names if n.startswith(self.veth_prefix) or n == self.bridge]

    def leftovers(self) -> list[str]:
        """Namespaces and links of this slot still on the machine (for leak checks)."""
        return [n for n in netns_names() if n.startswith(self.netns_prefix)] + self.links()

    def release(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            self.pids_file.unlink()
        os.close(self._fd)
        self._fd = None


@dataclasses.dataclass(frozen=True, slots=True)
class GceHost:
    """What :class:`GceHosts` made of one instance (a snapshot)."""

    name: str  # the instance's name (the host's hostname)
    zone: str
    ip: str
    netns: str
    veth: str
    dir: Path  # its disk: root/ is its /root, tmp/ its /tmp
    state: str  # booting | up | crashed | stopped | failed
    boots: int
    pid: int | None
    error: str | None
    running_at: float | None  # time.time() the instance went RUNNING (this boot)
    ready_at: float | None  # time.time() its sshd first answered (this boot)

    @property
    def up(self) -> bool:
        return self.state == "up"

    @property
    def boot_s(self) -> float | None:
        """Seconds from RUNNING to sshd answering: host boot time, for benchmarks."""
        if self.running_at is None or self.ready_at is None:
            return None
        return self.ready_at - self.running_at


@dataclasses.dataclass
class _Entry:
    info: GceHost
    host: NsHost
    gateway: str
    keys: list[str]
    last_info: dict[str, Any] | None = None  # the event that last described the instance


def _metadata_keys(metadata: dict[str, Any]) -> tuple[list[str], bool]:
    """(public keys in ``ssh-keys``/``sshKeys``, block-project-ssh-keys)."""
    keys: list[str] = []
    block = False
    for item in metadata.get("items") or []:
        if item.get("key") in ("ssh-keys", "sshKeys"):
            keys += [_strip_user(ln) for ln in (item.get("value") or "").splitlines() if ln.strip()]
        elif item.get("key") == "block-project-ssh-keys":
            block = str(item.get("value", "")).strip().lower() == "true"
    return keys, block


def _strip_user(line: str) -> str:
    """``user:ssh-ed25519 AAAA... comment`` -> ``ssh-ed25519 AAAA... comment``."""
    head, sep, rest = line.strip().partition(":")
    return rest.strip() if sep and " " not in head else line.strip()


def _on_link(subnet: str, network_cidrs: Iterable[str]) -> int:
    """The prefix length of the smallest network covering every subnet of the VPC network
    (the subnet's own when that leaves 198.18.0.0/15)."""
    nets = [ipaddress.ip_network(c) for c in {subnet, *network_cidrs}]
    cover = ipaddress.ip_network(subnet)
    while not all(n.subnet_of(cover) for n in nets):  # type: ignore[arg-type]
        cover = cover.supernet()
    return cover.prefixlen if cover.subnet_of(TEST_NET) else ipaddress.ip_network(subnet).prefixlen  # type: ignore[arg-type]


class GceHosts:
    """Real hosts for ``server``'s instances, under ``root`` (disks, the harness key)."""

    def __init__(
        self,
        server: GCEServer,
        root: Path,
        *,
        slot: GceSlot | None = None,
        keep: Sequence[str] | None = None,
        boot_timeout: float = 15,
        extra_keys: Sequence[str] = (),
    ) -> None:
        self.server = server
        self.root = Path(root).absolute()
        self.keep = keep
        self.boot_timeout = boot_timeout
        self.extra_keys = list(extra_keys)
        self._slot = slot
        self._own_slot = slot is None
        self._lock = threading.RLock()
        self._entries: dict[tuple[str, str], _Entry] = {}
        self._netns_of: dict[str, str] = {}
        self._counter = 0
        self._project_keys: list[str] = []
        self._bridge: Bridge | None = None
        self._queue: queue.Queue[tuple[str, Any, threading.Event | None]] = queue.Queue()
        self._thread: threading.Thread | None = None
        self.skipped: dict[str, str] = {}  # zone/name -> why no host was made
        self.errors: list[str] = []

    # --- life cycle ----------------------------------------------------------------------------

    @property
    def slot(self) -> GceSlot:
        if self._slot is None:
            raise RuntimeError("GceHosts is not started")
        return self._slot

    @property
    def key(self) -> Path:
        """The harness's private key: it logs in to every host as root."""
        return self.root / "harness_ed25519"

    def start(self) -> GceHosts:
        if self._slot is None:
            self._slot = GceSlot().claim()
        mine = self.slot.network
        for region, cidr in self.server.region_cidrs.items():
            if not ipaddress.ip_network(cidr).subnet_of(mine):  # type: ignore[arg-type]
                raise ValueError(
                    f"{region}'s subnet {cidr} is outside slot {self.slot.slot}'s {mine}: "
                    "make the server with GCEServer(regions=slot.regions(), auto_pool=slot.auto_pool())"
                )
        self.root.mkdir(parents=True, exist_ok=True)
        if not self.key.exists():
            subprocess.run(
                [
                    "ssh-keygen",
                    "-q",
                    "-t",
                    "ed25519",
                    "-N",
                    "",
                    "-C",
                    "styx-gce-harness",
                    "-f",
                    str(self.key),
                ],
                check=True,
                capture_output=True,
            )
        self._bridge = Bridge(self.slot.bridge).ensure()
        self._thread = threading.Thread(target=self._work, name="gce-hosts", daemon=True)
        self._thread.start()
        self.server.subscribe(self._on_event)
        self._project_keys = [_strip_user(k) for k in self.server.project_ssh_keys()]
        for info in self.server.running_infos():  # instances that ran before we attached
            self._on_event("running", info)
        return self

    def close(self) -> None:
        self.server.unsubscribe(self._on_event)
        if self._thread is not None:
            done = threading.Event()
            self._queue.put(("quit", None, done))
            done.wait(60)
            self._thread.join(10)
            self._thread = None
        with self._lock:
            for entry in list(self._entries.values()):
                self._destroy(entry)
            if self._bridge is not None:
                self._bridge.remove()
                self._bridge = None
        if self._own_slot and self._slot is not None:
            self._slot.release()
            self._slot = None

    def __enter__(self) -> GceHosts:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- what tests look at ---------------------------------------------------------------------

    def hosts(self) -> dict[str, GceHost]:
        """Instance name -> host (``zone/name`` when two zones hold the same name)."""
        with self._lock:
            names = [n for (_, n) in self._entries]
            return {
                (n if names.count(n) == 1 else f"{z}/{n}"): e.info
                for (z, n), e in self._entries.items()
            }

    def gateway(self, region: str) -> str:
        """The gateway address of ``region``'s subnet, on this machine's bridge (added now if no
        host there has booted yet): where hosts reach services of the test world."""
        assert self._bridge is not None, "GceHosts is not started"
        net = ipaddress.ip_network(self.server.region_cidrs[region])
        gateway = str(net.network_address + 1)
        self._bridge.add_address(f"{gateway}/{net.prefixlen}")
        return gateway

    def host(self, name: str) -> GceHost:
        return self._entry(name).info

    def pids(self, name: str) -> list[int]:
        """Every process on the instance's host (``ip netns pids``); [] once it is gone."""
        netns = self._netns_of.get(name)
        return netns_pids(netns) if netns else []

    def ssh(
        self,
        name: str,
        *argv: str,
        timeout: float = 60,
        user: str = "root",
        key: Path | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` (a shell command line when one string) on the host, with the harness's
        key (or ``key``)."""
        ip_ = self.host(name).ip
        cmd = argv[0] if len(argv) == 1 else shlex.join(argv)
        return subprocess.run(
            ["ssh", "-i", str(key or self.key), *SSH_OPTIONS, f"{user}@{ip_}", cmd],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def wait_up(self, names: Iterable[str], timeout: float = 15) -> dict[str, GceHost]:
        """Wait until every named instance's host answers SSH; returns them."""
        wanted = list(names)

        def ready() -> dict[str, GceHost] | None:
            hosts = self.hosts()
            failed = [
                f"{n}: {hosts[n].error}"
                for n in wanted
                if n in hosts and hosts[n].state == "failed"
            ]
            if failed:
                raise RuntimeError("hosts failed to boot: " + "; ".join(failed))
            skipped = [
                f"{n}: {w}" for k, w in self.skipped.items() for n in wanted if k.endswith(f"/{n}")
            ]
            if skipped:
                raise RuntimeError("instances without a host: " + "; ".join(skipped))
            return (
                {n: hosts[n] for n in wanted}
                if all(n in hosts and hosts[n].up for n in wanted)
                else None
            )

        return _wait_until(ready, timeout, f"hosts of {wanted} to come up")

    def wait_down(self, name: str, timeout: float = 10) -> None:
        """Wait until the host is off (stopped, crashed or removed) with no process left."""

        def down() -> bool | None:
            h = self.hosts().get(name)
            return True if (h is None or not h.up) and not self.pids(name) else None

        _wait_until(down, timeout, f"host of {name} to go away")

    def idle(self, timeout: float = 30) -> None:
        """Wait until every event so far has been acted on (hosts booted or removed)."""
        done = threading.Event()
        self._queue.put(("noop", None, done))
        if not done.wait(timeout):
            raise TimeoutError("GceHosts is still busy")

    # --- faults ---------------------------------------------------------------------------------

    def crash(self, name: str, *, unplug: bool = False) -> None:
        """Power the host off at once (the API still says RUNNING). Connections are then
        refused at once; with ``unplug`` the link goes down too and they time out."""
        with self._lock:
            entry = self._entry(name)
            entry.host.kill()
            if unplug:
                entry.host.set_link(False)
            self._set(entry, state="crashed", pid=None)
            self._record_pids()

    # --- events ---------------------------------------------------------------------------------

    def _on_event(self, event: str, info: dict[str, Any]) -> None:
        """Called by the server (never with its lock held). Power-off events are acted on
        before returning, so an operation's DONE means the host is off."""
        if event == "running":
            self._queue.put(("boot", info, None))
        elif event in ("stopped", "deleted", "cleared"):
            done = threading.Event()
            self._queue.put(
                ({"stopped": "off", "deleted": "destroy", "cleared": "clear"}[event], info, done)
            )
            if not done.wait(self.boot_timeout + 30):
                self.errors.append(f"{event}: timed out acting on it")
        elif event == "reset":
            self._queue.put(("reboot", info, None))
        elif event == "metadata":
            self._queue.put(("keys", info, None))
        elif event == "project-metadata":
            self._queue.put(("project-keys", info, None))

    def _work(self) -> None:
        while True:
            action, info, done = self._queue.get()
            try:
                if action == "quit":
                    return
                if action == "boot":
                    batch = [info]
                    while True:  # boot everything that is waiting together
                        try:
                            nxt = self._queue.get_nowait()
                        except queue.Empty:
                            break
                        if nxt[0] == "boot":
                            batch.append(nxt[1])
                        else:
                            self._boot_infos(batch)
                            batch = []
                            self._act(*nxt)
                            if nxt[0] == "quit":
                                return
                            break
                    if batch:
                        self._boot_infos(batch)
                else:
                    self._act(action, info, None)
            except Exception as exc:  # keep serving events; tests see .errors
                self.errors.append(f"{action}: {exc!r}")
            finally:
                if done is not None:
                    done.set()

    def _act(self, action: str, info: Any, done: threading.Event | None) -> None:
        try:
            with self._lock:
                if action == "off":
                    entry = self._entries.get(self._key(info))
                    if entry is not None and entry.info.state != "stopped":
                        self._power_off(entry)
                elif action == "destroy":
                    entry = self._entries.get(self._key(info))
                    if entry is not None:
                        self._destroy(entry)
                    self.skipped.pop("/".join(self._key(info)), None)
                elif action == "clear":
                    for entry in list(self._entries.values()):
                        self._destroy(entry)
                    self.skipped.clear()
                elif action == "reboot":
                    entry = self._entries.get(self._key(info))
                    if entry is not None and entry.info.state != "failed":
                        entry.host.kill()
                        entry.host.set_link(True)
                        entry.host.wipe_tmp()
                        self._boot([entry], plugged=True)
                elif action == "keys":
                    entry = self._entries.get(self._key(info))
                    if entry is not None:
                        entry.last_info = info
                        entry.keys = self._keys_of(info)
                        self._write_keys(entry)
                elif action == "project-keys":
                    self._project_keys = [_strip_user(k) for k in info.get("project_ssh_keys", [])]
                    for entry in self._entries.values():
                        if entry.last_info is not None:
                            entry.keys = self._keys_of(entry.last_info)
                            self._write_keys(entry)
        finally:
            if done is not None:
                done.set()

    @staticmethod
    def _key(info: dict[str, Any]) -> tuple[str, str]:
        inst = info["instance"]
        return inst["zone"].rsplit("/", 1)[-1], inst["name"]

    def _keys_of(self, info: dict[str, Any]) -> list[str]:
        own, block = _metadata_keys(info["instance"].get("metadata") or {})
        keys = list(own)
        if not block:
            keys += self._project_keys
        keys += self.extra_keys
        keys.append(Path(f"{self.key}.pub").read_text().strip())
        return keys

    def _write_keys(self, entry: _Entry) -> None:
        path = entry.host.dir / "root" / ".ssh" / "authorized_keys"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(k.strip() + "\n" for k in entry.keys if k.strip()))

    def _boot_infos(self, infos: list[dict[str, Any]]) -> None:
        with self._lock:
            entries = []
            for info in infos:
                key = self._key(info)
                entry = self._entries.get(key) or self._admit(info)
                if entry is None:
                    continue
                entry.last_info = info
                entry.keys = self._keys_of(info)
                if entry.info.state in ("stopped", "crashed", "failed"):
                    entries.append(entry)
            if entries:
                self._boot(entries)

    def _admit(self, info: dict[str, Any]) -> _Entry | None:
        zone, name = self._key(info)
        inst = info["instance"]
        addr = inst["networkInterfaces"][0].get("networkIP", "")
        subnet = info.get("subnet_cidr")
        why = None
        if not addr or not subnet:
            why = "no internal IP or subnet"
        elif ipaddress.ip_address(addr) not in TEST_NET:
            why = f"internal IP {addr} is outside {TEST_NET}"
        elif addr == str(ipaddress.ip_network(subnet).network_address + 1):
            why = f"{addr} is the subnet's gateway address"
        elif any(e.info.ip == addr for e in self._entries.values()):
            why = f"another instance already has {addr}"
        if why is not None:
            self.skipped[f"{zone}/{name}"] = why
            self.errors.append(f"{zone}/{name}: not materialized: {why}")
            return None
        net = ipaddress.ip_network(subnet)
        prefix = _on_link(subnet, info.get("network_cidrs") or [])
        self._counter += 1
        n = self._counter
        netns, veth = f"{self.slot.netns_prefix}{n}", f"{self.slot.veth_prefix}{n}"
        host = NsHost(
            dir=self.root / f"g{n}-{name}",
            address=f"{addr}/{prefix}",
            netns=netns,
            veth=veth,
            bridge=self.slot.bridge,
            hostname=name,
            keep=self.keep,
        )
        gce_host = GceHost(
            name=name,
            zone=zone,
            ip=addr,
            netns=netns,
            veth=veth,
            dir=host.dir,
            state="stopped",
            boots=0,
            pid=None,
            error=None,
            running_at=None,
            ready_at=None,
        )
        entry = _Entry(gce_host, host, f"{net.network_address + 1}/{net.prefixlen}", [])
        self._entries[(zone, name)] = entry
        self._netns_of[name] = netns
        self._netns_of[f"{zone}/{name}"] = netns
        return entry

    def _entry(self, name: str) -> _Entry:
        with self._lock:
            if "/" in name:
                zone, _, n = name.partition("/")
                return self._entries[(zone, n)]
            hits = [e for (_, n), e in self._entries.items() if n == name]
            if len(hits) != 1:
                raise KeyError(f"no single host for {name!r} (have {sorted(self.hosts())})")
            return hits[0]

    def _set(self, entry: _Entry, **changes: Any) -> None:
        entry.info = dataclasses.replace(entry.info, **changes)

    def _boot(self, entries: list[_Entry], *, plugged: bool = False) -> None:
        """Boot ``entries`` together: start all, then wait for all sshds."""
        assert self._bridge is not None
        now = time.time()
        pending: list[_Entry] = []
        for entry in entries:
            self._set(entry, state="booting", running_at=now, ready_at=None, error=None)
            try:
                entry.host.prepare(entry.keys)
                if not plugged:
                    entry.host.kill()
                    entry.host.wipe_tmp()
                    self._bridge.add_address(entry.gateway)
                    entry.host.plug()
                    self._fix_mac(entry)
                pid = entry.host.boot()
                self._set(entry, pid=pid, boots=entry.info.boots + 1)
                pending.append(entry)
            except Exception as exc:
                self._fail(entry, f"boot: {exc}")
        self._record_pids()
        deadline = time.monotonic() + self.boot_timeout
        while pending:
            for entry in list(pending):
                if entry.host.ready():
                    self._set(entry, state="up", ready_at=time.time())
                    pending.remove(entry)
                elif not entry.host.running():
                    self._fail(entry, f"died while booting: {entry.host.log_tail()}")
                    pending.remove(entry)
            if pending and time.monotonic() > deadline:
                for entry in pending:
                    self._fail(
                        entry, f"sshd not up in {self.boot_timeout:.0f} s: {entry.host.log_tail()}"
                    )
                break
            if pending:
                time.sleep(0.01)

    def _fix_mac(self, entry: _Entry) -> None:
        """Give eth0 the MAC GCE would (``42:01:`` + the IP's bytes) instead of the new random one
        of each plug: neighbour caches (the bridge side, other hosts) that still hold the
        address from before a stop/start then stay right, and the host is reachable at once."""
        mac = "42:01:" + ":".join(f"{b:02x}" for b in ipaddress.ip_address(entry.info.ip).packed)
        ns = entry.host.netns
        ip(
            "-n",
            ns,
            "-batch",
            "-",
            input=f"link set eth0 down\nlink set eth0 address {mac}\nlink set eth0 up\n",
        )
        ip("neigh", "flush", "to", entry.info.ip, check=False)

    def _fail(self, entry: _Entry, why: str) -> None:
        self.errors.append(f"{entry.info.zone}/{entry.info.name}: {why}")
        with contextlib.suppress(Exception):
            entry.host.kill()
        self._set(entry, state="failed", error=why, pid=None)

    def _power_off(self, entry: _Entry) -> None:
        entry.host.kill()
        entry.host.unplug()
        self._set(entry, state="stopped", pid=None, ready_at=None)
        self._record_pids()

    def _destroy(self, entry: _Entry) -> None:
        try:
            entry.host.kill()
            entry.host.unplug()
            shutil.rmtree(entry.host.dir, ignore_errors=True)
        finally:
            self._entries.pop((entry.info.zone, entry.info.name), None)
            self._record_pids()

    def _record_pids(self) -> None:
        """Where a later run finds hosts to reap if this one is killed (GceSlot.reap)."""
        if self._slot is None:
            return
        lines = [f"{e.host.pid} {e.host.dir}" for e in self._entries.values() if e.host.running()]
        with contextlib.suppress(OSError):
            self.slot.pids_file.write_text("".join(line + "\n" for line in lines))


def _wait_until(pred: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value is not None:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.02)


@contextlib.contextmanager
def gce_world(
    root: Path, *, slot: int | None = None, **server_kwargs: Any
) -> Iterator[tuple[GCEServer, GceHosts]]:
    """Claim a slot, start a :class:`GCEServer` with that slot's subnets and attach
    :class:`GceHosts`; everything is removed (and the slot released) on exit."""
    claim = GceSlot(slot).claim()
    try:
        server_kwargs.setdefault("regions", claim.regions())
        server_kwargs.setdefault("auto_pool", claim.auto_pool())
        with GCEServer(**server_kwargs) as server, GceHosts(server, root, slot=claim) as hosts:
            yield server, hosts
    finally:
        claim.release()
