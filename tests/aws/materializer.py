"""Real machines behind moto's EC2 instances.

A :class:`Materializer` polls moto (``describe_instances`` straight to moto, every
``interval`` seconds, in each watched region) and keeps one test host
(:class:`testworld.nshost.NsHost`) per instance:

* *running*: a host boots at the instance's private IP (sshd as root; authorized keys: the public
  key of the instance's EC2 key pair, plus the harness's own key). Its namespace is plugged into
  the slot's bridge, which holds the ``.1`` of every subnet in use; the host's address has the
  VPC's prefix, so hosts in different subnets of one VPC reach each other directly.
* *stopping/stopped*: the host is powered off and unplugged; its disk (``/root``, host key) stays,
  like an EBS root volume. *Started* again: a fresh boot at the same IP, ``/tmp`` emptied.
* *shutting-down/terminated*, or gone from moto (a reset): the host and its disk are removed.

Only private IPs in 198.18.0.0/15 are materialized (others are listed in :attr:`skipped`);
moto's public IPs are never used. The materializer never reboots a host by itself: after
:meth:`crash` the host stays dead while the instance is "running", as a dead machine would.

A stop followed by a start within one poll leaves no trace in moto's state; with ``events_url``
(the fault proxy) the materializer also reads the StopInstances and RebootInstances calls the
code under test made, and power-cycles (or reboots) those hosts.

Key material comes from ``key_source(instance, region)``; the default asks moto
(``describe_key_pairs(IncludePublicKey=True)``) and falls back to ``$STYX_HOME/ssh/styx-key.pub``.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import ipaddress
import os
import shlex
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from testworld.faultproxy import FaultClient
from testworld.nshost import TEST_NET, Bridge, NsHost, netns_pids

from .harness import REGIONS, AwsSlot, make_client

# Plain ssh to a host: its host key changes with every new instance at a reused address.
SSH_OPTIONS = (
    "-oIdentitiesOnly=yes",
    "-oBatchMode=yes",
    "-oStrictHostKeyChecking=no",
    "-oUserKnownHostsFile=/dev/null",
    "-oLogLevel=ERROR",
    "-oConnectTimeout=5",
)
KeySource = Callable[[dict[str, Any], str], list[str]]


@dataclasses.dataclass(frozen=True, slots=True)
class AwsHost:
    """What the materializer made of one instance (a snapshot)."""

    instance_id: str
    region: str
    zone: str | None
    ip: str
    name: str  # hostname and disk folder: a1, a2, ...
    netns: str  # for `ip netns pids`, `ip netns exec`
    veth: str  # the bridge side of its link
    dir: Path  # its disk: root/ is its /root, tmp/ its /tmp
    key_name: str | None
    state: str  # booting | up | crashed | stopped | failed
    boots: int
    pid: int | None  # the process whose SIGKILL powers it off
    error: str | None
    seen_running_at: float | None  # time.time() the poll first saw it running (this boot)
    ready_at: float | None  # time.time() its sshd first answered (this boot)

    @property
    def up(self) -> bool:
        return self.state == "up"

    @property
    def boot_s(self) -> float | None:
        """Seconds from "running" seen to sshd answering: host boot time, for benchmarks."""
        if self.seen_running_at is None or self.ready_at is None:
            return None
        return self.ready_at - self.seen_running_at


@dataclasses.dataclass
class _Entry:
    info: AwsHost
    host: NsHost
    instance: dict[str, Any]
    gateway: str  # IFACE the bridge needs for this host's subnet


def moto_key_source(moto_url: str) -> KeySource:
    """Public keys of an instance's key pair as moto has them, else ``$STYX_HOME/ssh/styx-key.pub``."""
    clients: dict[str, Any] = {}

    def source(instance: dict[str, Any], region: str) -> list[str]:
        name = instance.get("KeyName")
        if name:
            if region not in clients:
                clients[region] = make_client(moto_url, region=region)
            with contextlib.suppress(Exception):
                pairs = clients[region].describe_key_pairs(KeyNames=[name], IncludePublicKey=True)
                keys = [p["PublicKey"] for p in pairs["KeyPairs"] if p.get("PublicKey")]
                if keys:
                    return keys
        return file_key_source()(instance, region)

    return source


def file_key_source(path: str | Path | None = None) -> KeySource:
    """The key in ``path`` (default ``$STYX_HOME/ssh/styx-key.pub``, read at boot time)."""

    def source(instance: dict[str, Any], region: str) -> list[str]:
        p = (
            Path(path)
            if path
            else Path(os.environ.get("STYX_HOME", "~/.styx")).expanduser() / "ssh" / "styx-key.pub"
        )
        try:
            return [p.read_text().strip()]
        except OSError:
            return []

    return source


class Materializer:
    """Boots and kills test hosts so that moto's instances are real machines.

    ``start()`` claims the slot (unless given one), makes the bridge and starts polling in a
    thread; ``sync()`` runs one poll in the caller (also while paused); ``close()`` removes every
    host, namespace, link and the bridge, and releases the slot.
    """

    def __init__(
        self,
        root: Path,
        moto_url: str,
        *,
        slot: AwsSlot | None = None,
        regions: Iterable[str] = REGIONS,
        interval: float = 0.3,
        key_source: KeySource | None = None,
        extra_keys: Sequence[str] = (),
        keep: Sequence[str] | None = None,
        boot_timeout: float = 15,
        events_url: str | None = None,
    ) -> None:
        self.root = Path(root).absolute()
        self.moto_url = moto_url
        self.regions = list(dict.fromkeys(regions))
        self.interval = interval
        self.key_source = key_source or moto_key_source(moto_url)
        self.extra_keys = list(extra_keys)
        self.keep = keep
        #: The hosts' /etc/containers for hosts booted from now on (tests/testworld/containers.py).
        self.containers_etc: Path | None = None
        self.boot_timeout = boot_timeout
        self.events = FaultClient(events_url, timeout=5) if events_url else None
        self._events_seen = 0
        self._slot = slot
        self._own_slot = slot is None
        self._lock = threading.RLock()
        self._entries: dict[str, _Entry] = {}
        self._netns_of: dict[str, str] = {}  # every instance ever materialized -> namespace
        self._counter = 0
        self._clients: dict[str, Any] = {}
        self._subnets: dict[tuple[str, str], tuple[str, str]] = {}  # -> (subnet cidr, vpc cidr)
        self._vpcs: dict[tuple[str, str], str] = {}
        self._bridge: Bridge | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._active = threading.Event()
        self.skipped: dict[str, str] = {}  # instance id -> why no host was made
        self.errors: collections.deque[str] = collections.deque(maxlen=100)
        self.polls = 0

    # --- life cycle -----------------------------------------------------------------------------

    @property
    def slot(self) -> AwsSlot:
        if self._slot is None:
            raise RuntimeError("the materializer is not started")
        return self._slot

    @property
    def key(self) -> Path:
        """The harness's private key: it logs in to every host as root."""
        return self.root / "harness_ed25519"

    def start(self, *, poll: bool = True) -> Materializer:
        if self._slot is None:
            self._slot = AwsSlot().claim()
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
                    "styx-aws-harness",
                    "-f",
                    str(self.key),
                ],
                check=True,
                capture_output=True,
            )
        self._bridge = Bridge(self.slot.bridge).ensure()
        if poll:
            self.resume()
        return self

    def watch(self, *regions: str) -> None:
        """Also poll ``regions`` (the layout's regions are polled from the start)."""
        with self._lock:
            self.regions.extend(r for r in regions if r not in self.regions)

    def resume(self) -> None:
        """Poll in the background (starting the thread on first use)."""
        self._active.set()
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="aws-materializer", daemon=True)
            self._thread.start()

    def pause(self) -> None:
        """Stop polling after the current poll (hosts stay as they are)."""
        self._active.clear()
        with self._lock:  # wait for a poll in flight
            pass

    def close(self) -> None:
        self._stop.set()
        self._active.set()
        if self._thread is not None:
            self._thread.join(30)
            self._thread = None
        with self._lock:
            self.clear()
            if self._bridge is not None:
                self._bridge.remove()
                self._bridge = None
            if self._own_slot and self._slot is not None:
                self._slot.release()
                self._slot = None

    def __enter__(self) -> Materializer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def clear(self) -> None:
        """Remove every host (and its disk) and forget every instance."""
        with self._lock:
            for entry in list(self._entries.values()):
                self._destroy(entry)
            self.skipped.clear()
            self._subnets.clear()
            self._vpcs.clear()

    # --- what tests look at ---------------------------------------------------------------------

    def hosts(self) -> dict[str, AwsHost]:
        """Instance id -> host, for every instance not terminated that has (or had) a host."""
        with self._lock:
            return {iid: e.info for iid, e in self._entries.items()}

    def host(self, instance_id: str) -> AwsHost:
        with self._lock:
            return self._entries[instance_id].info

    def pids(self, instance_id: str) -> list[int]:
        """Every process on the instance's host (``ip netns pids``); [] once it is gone."""
        netns = self._netns_of.get(instance_id)
        return netns_pids(netns) if netns else []

    def ssh(
        self, instance_id: str, *argv: str, timeout: float = 60, options: Sequence[str] = ()
    ) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` (a shell command line when one string) on the host as root, with the
        harness's key."""
        ip = self.host(instance_id).ip
        cmd = argv[0] if len(argv) == 1 else shlex.join(argv)
        return subprocess.run(
            ["ssh", "-i", str(self.key), *SSH_OPTIONS, *options, f"root@{ip}", cmd],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def wait_up(self, instance_ids: Iterable[str], timeout: float = 10) -> dict[str, AwsHost]:
        """Wait until every instance's host answers SSH; returns them."""
        ids = list(instance_ids)

        def ready() -> dict[str, AwsHost] | None:
            if not self._active.is_set():
                self.sync()
            hosts = self.hosts()
            failed = [
                f"{i}: {hosts[i].error}" for i in ids if i in hosts and hosts[i].state == "failed"
            ]
            if failed:
                raise RuntimeError("hosts failed to boot: " + "; ".join(failed))
            return (
                {i: hosts[i] for i in ids} if all(i in hosts and hosts[i].up for i in ids) else None
            )

        return self.wait_until(ready, timeout, f"hosts of {ids} to come up")

    def wait_down(self, instance_id: str, timeout: float = 10) -> None:
        """Wait until the instance's host is off (stopped, crashed or removed) and no process of
        it is left."""

        def down() -> bool | None:
            if not self._active.is_set():
                self.sync()
            h = self.hosts().get(instance_id)
            return True if (h is None or not h.up) and not self.pids(instance_id) else None

        self.wait_until(down, timeout, f"host of {instance_id} to go away")

    # --- faults ---------------------------------------------------------------------------------

    def crash(self, instance_id: str, *, unplug: bool = False) -> None:
        """Power the host off at once (kill -9 of its PID namespace); moto still says "running".
        Connections are then refused at once; with ``unplug`` the link goes down too and they
        time out. Stop and start the instance to get it back."""
        with self._lock:
            entry = self._entries[instance_id]
            entry.host.kill()
            if unplug:
                entry.host.set_link(False)
            self._set(entry, state="crashed", pid=None)

    def reboot(self, instance_id: str) -> AwsHost:
        """Reboot the host in place (an OS reboot: /tmp emptied, /root kept), as
        RebootInstances through the proxy does."""
        with self._lock:
            entry = self._entries[instance_id]
            self._reboot(entry)
            return entry.info

    def _reboot(self, entry: _Entry) -> None:
        entry.host.kill()
        entry.host.set_link(True)
        entry.host.wipe_tmp()
        self._boot([entry], plugged=True)

    # --- polling --------------------------------------------------------------------------------

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._active.wait()
            if self._stop.is_set():
                break
            started = time.monotonic()
            try:
                self.sync()
            except Exception as exc:  # keep polling; tests see it in .errors
                self.errors.append(f"poll: {exc!r}")
            self._stop.wait(max(0.0, self.interval - (time.monotonic() - started)))

    def sync(self) -> None:
        """One poll: make the hosts match moto's instances now."""
        with self._lock:
            reboots = self._apply_events()
            listings: dict[str, list[dict[str, Any]]] = {}
            for region in self.regions:
                try:
                    listings[region] = self._describe(region)
                except Exception as exc:
                    self.errors.append(f"describe_instances in {region}: {exc!r}")
            self.polls += 1
            seen: set[str] = set()
            to_boot: list[_Entry] = []
            for region, instances in listings.items():
                for inst in instances:
                    iid, state = inst["InstanceId"], inst["State"]["Name"]
                    seen.add(iid)
                    entry = self._entries.get(iid)
                    if state == "running":
                        if entry is None and iid not in self.skipped:
                            entry = self._admit(region, inst)
                        if entry is not None and entry.info.state == "stopped":
                            to_boot.append(entry)
                        elif entry is not None and iid in reboots and entry.info.state != "failed":
                            self._reboot(entry)
                    elif state in ("stopping", "stopped"):
                        if entry is not None and entry.info.state != "stopped":
                            self._power_off(entry)
                    elif state in ("shutting-down", "terminated") and entry is not None:
                        self._destroy(entry)
            for iid, entry in list(self._entries.items()):
                if iid not in seen and entry.info.region in listings:
                    self._destroy(entry)  # gone from moto (a reset)
            if to_boot:
                self._boot(to_boot)

    def _apply_events(self) -> set[str]:
        """Stops and reboots the code under test asked for through the proxy since the last poll.
        moto's state alone misses a stop followed by a start within one poll; the proxy's log
        does not. Stopped hosts are powered off here (the poll boots them again if the instance
        runs); returns the instances to reboot."""
        if self.events is None:
            return set()
        try:
            entries = self.events.requests(
                ["StopInstances", "RebootInstances"], service="ec2", since=self._events_seen
            )
        except Exception as exc:
            self.errors.append(f"proxy log: {exc!r}")
            return set()
        reboots: set[str] = set()
        for e in sorted(entries, key=lambda e: int(e["n"])):
            if e.get("status") is None:
                break  # still in flight: the proxy logs a request before it answers; look again
            self._events_seen = max(self._events_seen, int(e["n"]))
            if e.get("status") != 200:
                continue
            ids = [v for k, vs in e["params"].items() if k.startswith("InstanceId.") for v in vs]
            for iid in ids:
                entry = self._entries.get(iid)
                if entry is None:
                    continue
                if e["action"] == "StopInstances" and entry.info.state != "stopped":
                    self._power_off(entry)
                elif e["action"] == "RebootInstances":
                    reboots.add(iid)
        return reboots

    def _client(self, region: str) -> Any:
        if region not in self._clients:
            self._clients[region] = make_client(self.moto_url, region=region)
        return self._clients[region]

    def _describe(self, region: str) -> list[dict[str, Any]]:
        pages = self._client(region).get_paginator("describe_instances").paginate()
        return [i for page in pages for r in page["Reservations"] for i in r["Instances"]]

    def _network_of(self, region: str, inst: dict[str, Any]) -> tuple[str, str]:
        """(subnet CIDR, VPC CIDR) of the instance."""
        key = (region, inst["SubnetId"])
        if key not in self._subnets:
            ec2 = self._client(region)
            sn = ec2.describe_subnets(SubnetIds=[inst["SubnetId"]])["Subnets"][0]
            vkey = (region, sn["VpcId"])
            if vkey not in self._vpcs:
                self._vpcs[vkey] = ec2.describe_vpcs(VpcIds=[sn["VpcId"]])["Vpcs"][0]["CidrBlock"]
            self._subnets[key] = (sn["CidrBlock"], self._vpcs[vkey])
        return self._subnets[key]

    def _admit(self, region: str, inst: dict[str, Any]) -> _Entry | None:
        """A new entry (state "stopped", i.e. not yet booted) or None, with the reason in
        :attr:`skipped`."""
        iid = inst["InstanceId"]
        addr = inst.get("PrivateIpAddress")
        why = None
        if not addr or not inst.get("SubnetId"):
            why = "no private IP or subnet"
        elif ipaddress.ip_address(addr) not in TEST_NET:
            why = f"private IP {addr} is outside {TEST_NET} (not the test VPC)"
        if why is None:
            try:
                subnet_cidr, vpc_cidr = self._network_of(region, inst)
            except Exception as exc:
                why = f"cannot look up its subnet: {exc!r}"
        if why is None:
            subnet = ipaddress.ip_network(subnet_cidr)
            vpc = ipaddress.ip_network(vpc_cidr)
            gateway = f"{subnet.network_address + 1}/{subnet.prefixlen}"
            on_link = vpc if vpc.subnet_of(TEST_NET) and subnet.subnet_of(vpc) else subnet
            if not subnet.subnet_of(TEST_NET):
                why = f"subnet {subnet} is outside {TEST_NET}"
            elif addr == str(subnet.network_address + 1):
                why = f"{addr} is the subnet's gateway address"
            elif any(e.info.ip == addr for e in self._entries.values()):
                why = f"another instance already has {addr}"
        if why is not None:
            self.skipped[iid] = why
            self.errors.append(f"{iid}: not materialized: {why}")
            return None
        self._counter += 1
        name = f"a{self._counter}"
        netns, veth = (
            f"{self.slot.netns_prefix}{self._counter}",
            f"{self.slot.veth_prefix}{self._counter}",
        )
        host = NsHost(
            dir=self.root / name,
            address=f"{addr}/{on_link.prefixlen}",
            netns=netns,
            veth=veth,
            bridge=self.slot.bridge,
            hostname=name,
            keep=self.keep,
            containers_etc=self.containers_etc,
        )
        info = AwsHost(
            instance_id=iid,
            region=region,
            zone=(inst.get("Placement") or {}).get("AvailabilityZone"),
            ip=addr,
            name=name,
            netns=netns,
            veth=veth,
            dir=host.dir,
            key_name=inst.get("KeyName"),
            state="stopped",
            boots=0,
            pid=None,
            error=None,
            seen_running_at=None,
            ready_at=None,
        )
        entry = _Entry(info, host, inst, gateway)
        self._entries[iid] = entry
        self._netns_of[iid] = netns
        return entry

    def _set(self, entry: _Entry, **changes: Any) -> None:
        entry.info = dataclasses.replace(entry.info, **changes)

    def _boot(self, entries: list[_Entry], *, plugged: bool = False) -> None:
        """Boot ``entries`` together: start all, then wait for all sshds."""
        assert self._bridge is not None
        now = time.time()
        pending: list[_Entry] = []
        for entry in entries:
            self._set(entry, state="booting", seen_running_at=now, ready_at=None, error=None)
            try:
                keys = [*self.key_source(entry.instance, entry.info.region), *self.extra_keys]
                keys.append(Path(f"{self.key}.pub").read_text())
                entry.host.prepare(keys)
                if not plugged:
                    entry.host.wipe_tmp()
                    self._bridge.add_address(entry.gateway)
                    entry.host.plug()
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

    def _fail(self, entry: _Entry, why: str) -> None:
        self.errors.append(f"{entry.info.instance_id}: {why}")
        with contextlib.suppress(Exception):
            entry.host.kill()
        self._set(entry, state="failed", error=why, pid=None)

    def _power_off(self, entry: _Entry) -> None:
        """Stopped: power off and unplug; the disk stays."""
        entry.host.kill()
        entry.host.unplug()
        self._set(entry, state="stopped", pid=None, ready_at=None)
        self._record_pids()

    def _destroy(self, entry: _Entry) -> None:
        """Terminated: power off, unplug, remove the disk, forget the instance."""
        try:
            entry.host.kill()
            entry.host.unplug()
            shutil.rmtree(entry.host.dir, ignore_errors=True)
        finally:
            self._entries.pop(entry.info.instance_id, None)
            self._record_pids()

    def _record_pids(self) -> None:
        """Where a later run finds hosts to reap if this one is killed (see AwsSlot.reap)."""
        if self._slot is None:
            return
        lines = [f"{e.host.pid} {e.host.dir}" for e in self._entries.values() if e.host.running()]
        with contextlib.suppress(OSError):
            self.slot.pids_file.write_text("".join(line + "\n" for line in lines))

    @staticmethod
    def wait_until(pred: Callable[[], Any], timeout: float, what: str) -> Any:
        """``pred()``'s first value that is not None, polled every 50 ms."""
        deadline = time.monotonic() + timeout
        while True:
            value = pred()
            if value is not None:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
            time.sleep(0.05)
