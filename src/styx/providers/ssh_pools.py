"""SSH node pools: ``~/.styx/ssh_node_pools.yaml`` in SkyPilot's format.

::

    my-pool:                      # the pool's name; launch with `infra: ssh/my-pool`
      user: ubuntu                # defaults for every host of the pool
      identity_file: ~/.ssh/id_ed25519
      port: 22
      hosts:
        - 10.0.0.5                # an address, or an alias from ~/.ssh/config
        - ip: 10.0.0.6            # or a mapping that overrides the pool's defaults
          user: admin
          proxy_jump: bastion

The file is validated like a task: an unknown key gets a did-you-mean, a wrong type names the
key and its line.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict

from styx import paths
from styx.errors import ConfigError, NotFoundError, SpecError
from styx.infra import Capabilities, Capability, InfraOffer, InfraStatus, NodeCapacity
from styx.providers.registry import InfraInfo
from styx.spec.check import Value, root
from styx.spec.yamlio import load_documents, read_text

if TYPE_CHECKING:
    from styx.spec.task import Task

POOLS_FILE = "ssh_node_pools.yaml"
_HOST_KEYS = ("ip", "user", "identity_file", "port", "proxy_jump", "password", "use_ssh_config")
_POOL_KEYS = ("hosts", "user", "identity_file", "port", "proxy_jump", "password", "use_ssh_config")


@dataclasses.dataclass(frozen=True, slots=True)
class PoolHost:
    """One machine of a pool, as Styx will reach it."""

    address: str  # an IP, a hostname, or an ssh-config alias
    user: str | None = None
    identity_file: str | None = None
    port: int | None = None
    proxy_jump: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Pool:
    name: str
    hosts: tuple[PoolHost, ...]


def pools_file() -> Path:
    return paths.home() / POOLS_FILE


def load_pools(path: str | os.PathLike[str] | None = None) -> dict[str, Pool]:
    """All pools of the file (none if it does not exist); ConfigError names a bad key's line."""
    name = os.fspath(path if path is not None else pools_file())
    if not os.path.exists(name):
        return {}
    try:
        documents = load_documents(read_text(name), file=name)
    except SpecError as exc:
        raise ConfigError(
            exc.message, exc.hint, location=exc.location, details={"reason": exc.code}
        ) from exc
    if not documents or documents[0].data is None:
        return {}
    doc = documents[0]
    top = root(doc.data, file=name, positions=doc.positions, config=True)
    return {pool: _pool(pool, value) for pool, value in top.entries(what="pools").items()}


def _pool(name: str, v: Value) -> Pool:
    fields = v.fields(_POOL_KEYS, what=f"pool '{name}'")
    if "password" in fields:
        fields["password"].fail(
            "not-supported",
            "Password logins are not supported for SSH node pools.",
            "Use key-based login: set identity_file (ssh-copy-id installs your key).",
        )
    if "hosts" not in fields:
        v.fail("missing-field", f"Pool '{name}' lists no hosts.", "Add `hosts:` with at least one.")
    defaults = _host_fields(fields)
    hosts = []
    for item in fields["hosts"].items():
        if isinstance(item.raw, str):
            hosts.append(PoolHost(address=item.string(), **defaults))
            continue
        own = item.fields(_HOST_KEYS, what="host")
        if "ip" not in own:
            item.fail(
                "missing-field",
                "A host mapping needs an `ip`.",
                "Give the host's address or ssh-config alias as `ip:`.",
            )
        merged: _HostFields = {**defaults, **_host_fields(own)}
        hosts.append(PoolHost(address=own["ip"].string(), **merged))
    if not hosts:
        fields["hosts"].fail(
            "missing-field",
            f"Pool '{name}' lists no hosts.",
            "Add at least one host under `hosts:`.",
        )
    return Pool(name, tuple(hosts))


class _HostFields(TypedDict, total=False):
    """The optional fields of a :class:`PoolHost` given in the file (a pool's defaults, or a
    host's own)."""

    user: str
    identity_file: str
    port: int
    proxy_jump: str


def _host_fields(fields: dict[str, Value]) -> _HostFields:
    out: _HostFields = {}
    if "user" in fields:
        out["user"] = fields["user"].string()
    if "identity_file" in fields:
        out["identity_file"] = fields["identity_file"].string()
    if "proxy_jump" in fields:
        out["proxy_jump"] = fields["proxy_jump"].string()
    if "port" in fields:
        out["port"] = fields["port"].integer(minimum=1, maximum=65535)
    return out


def get_pool(pool_name: str) -> Pool:
    """The named pool, or a clear error listing the pools there are."""
    pools = load_pools()
    if pool_name not in pools:
        where = str(pools_file())
        known = ", ".join(sorted(pools)) or "none"
        raise NotFoundError(
            f"There is no SSH node pool named '{pool_name}' in {where} (pools: {known}).",
            f"Define it in {where}: a pool name with a list of `hosts`.",
            code="ssh-pool-not-found",
        )
    return pools[pool_name]


# --- the provider seam's declaration ---------------------------------------------------------


def check(probe: bool = False) -> InfraStatus:
    """Enabled when the pools file names at least one pool (the hosts are reached at launch)."""
    del probe
    try:
        pools = load_pools()
    except ConfigError as err:
        return InfraStatus("ssh", False, f"{pools_file()} is invalid: {err.message}")
    if pools:
        return InfraStatus("ssh", True, f"node pools: {', '.join(sorted(pools))}")
    return InfraStatus("ssh", False, f"no node pool with hosts in {pools_file()}")


def offers(task: Task) -> list[InfraOffer]:
    """The pools a task names (``infra: ssh`` or ``ssh/<pool>``), each offering what the task
    asks on every host: hosts are probed only at provisioning, where the SSH provider checks
    the real hosts and says which one falls short. A node costs what the config says
    (``ssh.context_configs.<pool>.hourly_price``, else ``ssh.hourly_price``; 0 by default)."""
    from styx.config import node_hourly_price

    wanted_pools = {c.region for c in task.resources.candidates() if c.cloud == "ssh"}
    if not wanted_pools:
        return []
    wanted = {a.name: float(a.count) for c in task.resources.candidates() for a in c.accelerators}
    out = []
    for pool in load_pools().values():
        if None in wanted_pools or pool.name in wanted_pools:
            node = NodeCapacity(float("inf"), float("inf"), wanted)
            price = node_hourly_price("ssh", pool.name)
            out.append(InfraOffer("ssh", pool.name, (node,) * len(pool.hosts), price))
    return out


INFO = InfraInfo(
    name="ssh",
    title="SSH node pools",
    capabilities=Capabilities.of(
        Capability.MULTI_NODE,
        Capability.PORTS,
        Capability.STOP,
        Capability.CONTAINER_IMAGES,
        Capability.BUCKET_MOUNTS,
    ),
    check=check,
    provider="styx.providers.ssh:SSHProvider",
    offers=offers,
)
