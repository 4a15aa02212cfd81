"""The AWS test world: moto's EC2 server on loopback, the fault proxy in front of it, a VPC in
198.18.0.0/16 with a subnet per zone, and a check that nothing was left behind.

Code under test talks to the *proxy* (``AwsEndpoint.url``, put in ``AWS_ENDPOINT_URL``); the
harness itself (VPC set-up, the materializer, leak checks) talks to moto directly, so injected
faults never hit it and the proxy's log holds only what the code under test asked.

Network rule: only 127.0.0.1 (moto, the proxy) and test hosts in 198.18.0.0/15. moto's public
IPs are fake and never contacted; the VPC's subnets do not map public IPs.

Subnet layout of slot ``s`` (see :class:`AwsSlot`; slot 0 unless another run holds it), third
octet ``b = 200 + 8*s``, far above the testbed's slots (``198.18.k.0/24`` for small k)::

    VPC styx-test-vpc 198.18.0.0/16 in each region
    us-east-1a 198.18.b.0/24   us-east-1b 198.18.(b+1).0/24   us-east-1c 198.18.(b+2).0/24
    us-west-2a 198.18.(b+3).0/24   us-west-2b 198.18.(b+4).0/24

moto assigns private IPs from the subnet in order, starting at ``.4`` (``.1`` is the gateway:
the materializer's bridge holds it).
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import fnmatch
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from testworld.faultproxy import FaultClient, busy_seconds
from testworld.nshost import delete_netns, ip, netns_names
from testworld.testbed import SLOT_DIR, _reap_stale

HERE = Path(__file__).resolve().parent
FAULTPROXY = HERE.parent / "testworld" / "faultproxy.py"

VPC_NAME = "styx-test-vpc"
VPC_CIDR = "198.18.0.0/16"
ZONES: dict[str, tuple[str, ...]] = {
    "us-east-1": ("us-east-1a", "us-east-1b", "us-east-1c"),
    "us-west-2": ("us-west-2a", "us-west-2b"),
}
REGIONS = tuple(ZONES)
AWS_SLOTS = 7  # third octets 200..255 in blocks of 8
TEST_AMI = "ami-03cf127a"  # an image moto knows in every region (Amazon Linux)
CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


def region_of(zone: str) -> str:
    """``us-east-1a`` -> ``us-east-1`` (also for local zones such as ``us-west-2-lax-1a``)."""
    m = re.match(r"^([a-z]+(?:-[a-z]+)+-\d+)", zone)
    if not m:
        raise ValueError(f"not an availability zone: {zone!r}")
    return m.group(1)


# --- boto3 ------------------------------------------------------------------------------------


def client_env(url: str, region: str = "us-east-1") -> dict[str, str]:
    """The environment a boto3 client (or ``styx``) needs to reach ``url`` as the test account."""
    return {
        "AWS_ENDPOINT_URL": url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": region,
        "AWS_EC2_METADATA_DISABLED": "true",
    }


_CLIENTS: dict[tuple[str, str, str], Any] = {}
_CLIENTS_LOCK = threading.Lock()


def make_client(url: str, service: str = "ec2", region: str = "us-east-1", **config: Any) -> Any:
    """A boto3 client for ``url`` with the test credentials, one retry, short timeouts.
    Independent of the environment (tests change it). Cached (making one costs ~0.1 s) unless
    ``config`` is given; boto3 clients may be shared between threads."""
    key = (url, service, region)
    if not config:
        with _CLIENTS_LOCK:
            if key not in _CLIENTS:
                _CLIENTS[key] = _new_client(url, service, region)
            return _CLIENTS[key]
    return _new_client(url, service, region, **config)


def _new_client(url: str, service: str, region: str, **config: Any) -> Any:
    import boto3
    from botocore.config import Config

    cfg = Config(
        retries={"total_max_attempts": 2, "mode": "standard"},
        connect_timeout=5,
        read_timeout=60,
        **config,
    )
    return boto3.session.Session().client(
        service, region_name=region, endpoint_url=url, config=cfg, **CREDENTIALS
    )


def _python_tied_to_us(code: str) -> list[str]:
    """``python -c CODE`` that gets SIGTERM when this process dies (a killed test run leaves no
    server behind)."""
    prelude = (
        "import ctypes, os, signal, sys; ctypes.CDLL(None).prctl(1, signal.SIGTERM); "
        f"os.getppid() == {os.getpid()} or sys.exit(1); "
    )
    return [sys.executable, "-u", "-c", prelude + code]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"{url} exited {proc.returncode}: {_tail(log)}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except urllib.error.HTTPError:
            return  # it answers
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{url} did not answer in {timeout:.0f} s: {_tail(log)}"
                ) from None
            time.sleep(0.05)


def _tail(path: Path, n: int = 600) -> str:
    try:
        return path.read_text(errors="replace")[-n:].strip()
    except OSError:
        return "(no log)"


def _stop(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


# --- moto's server ------------------------------------------------------------------------------


class MotoServer:
    """``moto_server`` on 127.0.0.1 at a free port (``python -m moto.server``), with instance
    types validated against moto's per-region offerings and AMIs against moto's images
    (``MOTO_EC2_ENABLE_INSTANCE_TYPE_VALIDATION``, ``MOTO_ENABLE_AMI_VALIDATION``). It dies
    with this process."""

    def __init__(
        self, workdir: Path, *, validate_instance_types: bool = True, validate_amis: bool = True
    ) -> None:
        self.workdir = Path(workdir)
        self.validate_instance_types = validate_instance_types
        self.validate_amis = validate_amis
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        """Client environment for moto directly (tests use :attr:`AwsEndpoint.env`)."""
        return client_env(self.url)

    @property
    def log(self) -> Path:
        return self.workdir / "moto.log"

    def start(self, timeout: float = 60) -> MotoServer:
        self.workdir.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        if self.validate_instance_types:
            env["MOTO_EC2_ENABLE_INSTANCE_TYPE_VALIDATION"] = "true"
        if self.validate_amis:
            env["MOTO_ENABLE_AMI_VALIDATION"] = "true"
        for attempt in range(3):  # the free port may be taken before moto binds it
            self.port = free_port()
            with open(self.log, "ab") as log:
                self.proc = subprocess.Popen(
                    [
                        *_python_tied_to_us("from moto.server import main; main(sys.argv[1:])"),
                        *("-H", "127.0.0.1", "-p", str(self.port)),
                    ],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=log,
                    env=env,
                    start_new_session=True,
                )
            try:
                _wait_http(self.url + "/moto-api/", self.proc, timeout, self.log)
                break
            except RuntimeError:
                if attempt == 2:
                    raise
        self.warm_up()
        return self

    def warm_up(self) -> None:
        """Load EC2's backends now (the first call costs ~1 s), then forget what that made."""
        for region in REGIONS:
            make_client(self.url, region=region).describe_instances()
        self.reset()

    def reset(self) -> None:
        """Forget every resource (``POST /moto-api/reset``): ~0.1 s when only the layout's regions
        were touched, seconds after every region was."""
        req = urllib.request.Request(self.url + "/moto-api/reset", data=b"", method="POST")
        with urllib.request.urlopen(req, timeout=60):
            pass

    def stop(self) -> None:
        _stop(self.proc)
        self.proc = None


class ProxyProcess:
    """``faultproxy.py`` in its own process in front of ``upstream_port``."""

    def __init__(self, upstream_port: int, workdir: Path) -> None:
        self.upstream_port = upstream_port
        self.workdir = Path(workdir)
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30) -> ProxyProcess:
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = self.workdir / "faultproxy.log"
        with open(log, "ab") as err:
            self.proc = subprocess.Popen(
                [
                    *_python_tied_to_us(
                        "import runpy; sys.argv = sys.argv[1:]; "
                        "runpy.run_path(sys.argv[0], run_name='__main__')"
                    ),
                    *(str(FAULTPROXY), "--port", "0"),
                    *("--upstream", f"127.0.0.1:{self.upstream_port}"),
                ],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=err,
                start_new_session=True,
            )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().decode()
        m = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
        if not m:
            _stop(self.proc)
            raise RuntimeError(f"faultproxy did not start: {line!r} {_tail(log)}")
        self.port = int(m.group(1))
        self.proc.stdout.close()
        _wait_http(self.url + "/__fault__", self.proc, timeout, log)
        return self

    def stop(self) -> None:
        _stop(self.proc)
        self.proc = None


# --- slots --------------------------------------------------------------------------------------


class AwsSlot:
    """A claim on names and addresses that no other test run on this machine uses at the same
    time: subnets ``198.18.(200+8s+j).0/24``, bridge ``styxaws{s}``, host namespaces
    ``styx-a{s}h{n}`` and links ``va{s}h{n}``. Claiming reaps what a killed run left there."""

    def __init__(self, slot: int | None = None) -> None:
        self._want = slot
        self.slot = -1
        self._fd: int | None = None

    @property
    def base_octet(self) -> int:
        return 200 + 8 * self.slot

    @property
    def bridge(self) -> str:
        return f"styxaws{self.slot}"

    @property
    def netns_prefix(self) -> str:
        return f"styx-a{self.slot}h"

    @property
    def veth_prefix(self) -> str:
        return f"va{self.slot}h"

    @property
    def pids_file(self) -> Path:
        return SLOT_DIR / f"aws-{self.slot}.pids"

    def claim(self) -> AwsSlot:
        SLOT_DIR.mkdir(mode=0o700, exist_ok=True)
        for slot in range(AWS_SLOTS) if self._want is None else [self._want]:
            fd = os.open(SLOT_DIR / f"aws-{slot}.lock", os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            self.slot, self._fd = slot, fd
            self.reap()
            return self
        raise RuntimeError(f"no free AWS test slot (of {AWS_SLOTS}); see {SLOT_DIR}")

    def reap(self) -> None:
        """Remove hosts, links and the bridge of this slot that a dead run left behind."""
        _reap_stale(self.pids_file)
        for name in netns_names():
            if name.startswith(self.netns_prefix):
                delete_netns(name)
        links = ip("-o", "link", "show", check=False).stdout
        for m in re.finditer(r"^\d+: ([^:@\s]+)", links, re.M):
            if m.group(1).startswith(self.veth_prefix) or m.group(1) == self.bridge:
                ip("link", "del", m.group(1), check=False)

    def release(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            self.pids_file.unlink()
        os.close(self._fd)
        self._fd = None


# --- the VPC ------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Subnet:
    id: str
    zone: str
    region: str
    cidr: str
    vpc_id: str

    @property
    def gateway(self) -> str:
        """The subnet's ``.1`` (held by the materializer's bridge)."""
        import ipaddress

        return str(ipaddress.ip_network(self.cidr).network_address + 1)


@dataclasses.dataclass(frozen=True, slots=True)
class AwsNetwork:
    """The test VPC: ``vpc_ids`` by region, ``subnets`` by zone."""

    name: str
    cidr: str
    vpc_ids: Mapping[str, str]
    subnets: Mapping[str, Subnet]

    @property
    def regions(self) -> tuple[str, ...]:
        return tuple(self.vpc_ids)

    def zones(self, region: str | None = None) -> list[str]:
        return [z for z, s in self.subnets.items() if region is None or s.region == region]

    def subnet_ids(self, zone: str) -> list[str]:
        return [self.subnets[zone].id] if zone in self.subnets else []

    def config(self) -> dict[str, Any]:
        """The ``aws:`` config section that points Styx at this VPC with private IPs, as root."""
        return {"vpc_name": self.name, "use_internal_ips": True, "ssh_user": "root"}


def subnet_layout(slot: int) -> dict[str, str]:
    """Zone -> subnet CIDR for ``slot`` (see the module docstring)."""
    base = 200 + 8 * slot
    zones = [z for zs in ZONES.values() for z in zs]
    if base + len(zones) > 256:
        raise ValueError(f"no AWS subnet layout for slot {slot}")
    return {z: f"198.18.{base + j}.0/24" for j, z in enumerate(zones)}


def create_test_vpc(moto_url: str, slot: int = 0, *, name: str = VPC_NAME) -> AwsNetwork:
    """Create the VPC (tagged ``Name=name``) and one subnet per zone in each region, in moto."""
    vpc_ids: dict[str, str] = {}
    subnets: dict[str, Subnet] = {}
    layout = subnet_layout(slot)
    for region, zones in ZONES.items():
        ec2 = make_client(moto_url, region=region)
        tags = [{"ResourceType": "vpc", "Tags": [{"Key": "Name", "Value": name}]}]
        vpc = ec2.create_vpc(CidrBlock=VPC_CIDR, TagSpecifications=tags)["Vpc"]["VpcId"]
        vpc_ids[region] = vpc
        for zone in zones:
            tags = [
                {"ResourceType": "subnet", "Tags": [{"Key": "Name", "Value": f"{name}-{zone}"}]}
            ]
            sn = ec2.create_subnet(
                VpcId=vpc, CidrBlock=layout[zone], AvailabilityZone=zone, TagSpecifications=tags
            )["Subnet"]
            if sn.get("MapPublicIpOnLaunch"):
                ec2.modify_subnet_attribute(
                    SubnetId=sn["SubnetId"], MapPublicIpOnLaunch={"Value": False}
                )
            subnets[zone] = Subnet(sn["SubnetId"], zone, region, layout[zone], vpc)
    return AwsNetwork(name, VPC_CIDR, vpc_ids, subnets)


# --- leaks --------------------------------------------------------------------------------------

LIVE_STATES = ("pending", "running", "stopping", "stopped", "shutting-down")


def _pages(client: Any, op: str, key: str, **kw: Any) -> list[dict[str, Any]]:
    if client.can_paginate(op):
        return [x for page in client.get_paginator(op).paginate(**kw) for x in page.get(key, [])]
    return list(getattr(client, op)(**kw).get(key, []))


def leaks(ec2: Any, user_key_names: Iterable[str] = ()) -> list[str]:
    """What is left in ``ec2``'s region: live instances, security groups other than
    ``default``, key pairs beyond ``user_key_names`` (fnmatch patterns), volumes, open spot
    requests. Empty when clean."""
    region = ec2.meta.region_name
    keep_keys = list(user_key_names)
    found: list[str] = []
    for res in _pages(
        ec2,
        "describe_instances",
        "Reservations",
        Filters=[{"Name": "instance-state-name", "Values": list(LIVE_STATES)}],
    ):
        for inst in res["Instances"]:
            tags = {t["Key"]: t["Value"] for t in inst.get("Tags", [])}
            found.append(
                f"{region}: instance {inst['InstanceId']} is {inst['State']['Name']} {tags}"
            )
    for sg in _pages(ec2, "describe_security_groups", "SecurityGroups"):
        if sg["GroupName"] != "default":
            found.append(f"{region}: security group {sg['GroupId']} {sg['GroupName']!r}")
    for kp in ec2.describe_key_pairs().get("KeyPairs", []):
        if not any(fnmatch.fnmatchcase(kp["KeyName"], pat) for pat in keep_keys):
            found.append(f"{region}: key pair {kp['KeyName']!r}")
    for vol in _pages(ec2, "describe_volumes", "Volumes"):
        found.append(f"{region}: volume {vol['VolumeId']} ({vol['State']})")
    for req in ec2.describe_spot_instance_requests().get("SpotInstanceRequests", []):
        if req.get("State") in ("open", "active"):
            found.append(f"{region}: spot request {req['SpotInstanceRequestId']} ({req['State']})")
    return found


def assert_no_leaks(
    ec2: Any, user_key_names: Iterable[str] = (), *, regions: Sequence[str] | None = None
) -> None:
    """Fail listing everything :func:`leaks` finds, in ``ec2``'s region or in each of
    ``regions`` (through ``ec2``'s endpoint)."""
    keys = list(user_key_names)
    if regions is None:
        clients = [ec2]
    else:
        clients = [make_client(ec2.meta.endpoint_url, region=r) for r in regions]
    found = [leak for c in clients for leak in leaks(c, keys)]
    if found:
        raise AssertionError("AWS resources left behind:\n  " + "\n  ".join(found))


# --- what a test holds --------------------------------------------------------------------------


class AwsEndpoint:
    """moto behind the fault proxy, as a test sees it: ``url``/``env`` for the code under test
    (the proxy), the fault API, clients, and a leak check."""

    def __init__(self, moto: MotoServer, proxy_url: str) -> None:
        self.moto = moto
        self.url = proxy_url
        self.faults = FaultClient(proxy_url)

    @property
    def env(self) -> dict[str, str]:
        return client_env(self.url)

    def client(
        self, service: str = "ec2", region: str = "us-east-1", *, direct: bool = False
    ) -> Any:
        """A boto3 client through the proxy, or straight to moto with ``direct``."""
        return make_client(self.moto.url if direct else self.url, service, region)

    # --- faults ---

    def inject(
        self,
        action: str | Sequence[str] = "RunInstances",
        code: str | None = "InsufficientInstanceCapacity",
        *,
        zone: str | Sequence[str] | None = None,
        match: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None,
        region: str | Sequence[str] | None = None,
        status: int | None = None,
        count: int = -1,
        **kw: Any,
    ) -> dict[str, Any]:
        """Add a fault rule (``testworld.faultproxy``); by default every RunInstances fails with
        InsufficientInstanceCapacity until :meth:`clear`.

        ``zone`` (one or a list) limits it to requests placed in that zone: by
        ``*.AvailabilityZone`` or by a ``*.SubnetId`` of the zone (looked up in moto now, so
        create the subnets first); ``region`` to requests signed for that region. ``match`` adds
        parameter conditions. Other keywords: ``message``, ``delay``, ``drop``, ``skip``,
        ``service``."""
        alternatives: list[dict[str, Any]] = []
        base = [dict(match)] if isinstance(match, Mapping) else [dict(m) for m in match or [{}]]
        if zone is not None:
            zones = [zone] if isinstance(zone, str) else list(zone)
            for z in zones:
                by_zone = [{"AvailabilityZone": z}]
                ids = self.subnets_in(z)
                if ids:
                    by_zone.append({"SubnetId": ids})
                alternatives += [{**b, **cond} for b in base for cond in by_zone]
            if region is None:
                region = sorted({region_of(z) for z in zones})
        else:
            alternatives = base
        rule_match = [a for a in alternatives if a] or None
        return self.faults.inject(
            action, code, match=rule_match, region=region, status=status, count=count, **kw
        )

    def subnets_in(self, zone: str) -> list[str]:
        ec2 = self.client(region=region_of(zone), direct=True)
        flt = [{"Name": "availability-zone", "Values": [zone]}]
        return [s["SubnetId"] for s in ec2.describe_subnets(Filters=flt)["Subnets"]]

    def clear(self) -> None:
        self.faults.clear()

    def hits(self, which: int | str | Mapping[str, Any] | None = None) -> int:
        return self.faults.hits(which)

    def requests(self, action: str | None = None, **kw: Any) -> list[dict[str, Any]]:
        return self.faults.requests(action, **kw)

    def mark(self) -> int:
        """The number of the latest logged request: pass it as ``since`` to :meth:`requests` or
        :meth:`api_seconds` to see only what comes after (numbers keep rising across resets)."""
        log = self.faults.requests()
        return int(log[-1]["n"]) if log else 0

    def api_seconds(self, since: int = 0) -> float:
        """Wall-clock seconds moto spent answering the code under test (requests numbered above
        ``since``; overlapping calls count once): subtract it to get Styx's own time."""
        return busy_seconds(self.faults.requests(since=since))

    def regions_touched(self) -> list[str]:
        """Regions the code under test sent EC2 requests to (from the proxy's log)."""
        return sorted({r["region"] for r in self.faults.requests(service="ec2") if r["region"]})

    # --- leaks ---

    def leaks(
        self, user_key_names: Iterable[str] = (), regions: Sequence[str] | None = None
    ) -> list[str]:
        keys = list(user_key_names)
        regs = sorted(set(REGIONS) | set(self.regions_touched())) if regions is None else regions
        return [x for r in regs for x in leaks(self.client(region=r, direct=True), keys)]

    def assert_no_leaks(
        self, user_key_names: Iterable[str] = (), regions: Sequence[str] | None = None
    ) -> None:
        """:func:`assert_no_leaks` over the layout's regions and every region the code under test
        touched (or ``regions``)."""
        found = self.leaks(user_key_names, regions)
        if found:
            raise AssertionError("AWS resources left behind:\n  " + "\n  ".join(found))

    def reset(self) -> None:
        """Forget every resource in moto, every fault rule and the request log."""
        self.moto.reset()
        self.faults.reset()
