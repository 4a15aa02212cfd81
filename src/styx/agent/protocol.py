"""The agent's typed, versioned wire protocol and its on-disk config.

Everything that crosses the agent's socket or lives in ``agent.json`` is defined here as a frozen
dataclass with ``to_dict``/``from_dict``. The wire format is plain JSON, one object per line, over
a stream socket (a local unix socket, or one forwarded through SSH):

* request: ``{"v": PROTOCOL_VERSION, "op": "<op>", "args": {...}}``
* reply: ``{"v": ..., "ok": true, "result": ...}`` or ``{"v": ..., "ok": false, "error":
  {"code", "message", "hint"}}``
* streamed replies (``tail_logs``) send ``{"v": ..., "data": "<base64>"}`` lines first and end
  with an ordinary reply. A log chunk is the job's output bytes as written, base64-encoded:
  JSON carries only text, and a job's output need not be UTF-8.
* while a request is under way (a followed log, ``wait``, ``cancel``) the agent sends
  ``{"v": ..., "alive": true}`` at least every :data:`HEARTBEAT_S` seconds; a client that
  hears nothing for :data:`STREAM_IDLE_S` seconds gives up (``agent-unreachable``), so no call
  waits forever on an agent that hangs or a link that died.

A request whose ``v`` differs from :data:`PROTOCOL_VERSION` gets the ``agent-protocol-mismatch``
error. Unknown fields in a request are rejected (``invalid-request``) so that typos surface.
Fields are read with Styx's one validation framework (:mod:`styx.spec.check`, which needs no
PyYAML), whose errors here are AgentErrors ``invalid-request`` naming the field. Besides the
standard library this module imports only that, :mod:`styx.errors`, :mod:`styx.paths` and the
shared job status (:mod:`styx.lifecycle`).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import functools
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from styx.errors import AgentError, StyxError
from styx.lifecycle import ACTIVE_JOB_STATUSES, JOB_TRANSITIONS, TERMINAL_JOB_STATUSES
from styx.lifecycle import JobStatus as JobStatus  # re-exported: the protocol's job status
from styx.paths import atomic_write
from styx.spec.check import Source, Value

PROTOCOL_VERSION = 3  # 2: heartbeats on long requests; 3: log chunks are bytes (base64)

#: How often the agent says it is alive during a long request.
HEARTBEAT_S = 5.0
#: How long a client waits for any line from the agent before it gives up on it.
STREAM_IDLE_S = 30.0

#: The config file's name inside an agent root folder.
CONFIG_NAME = "agent.json"

#: SkyPilot's default per-node CPU demand of a job that names neither CPUs nor accelerators
#: (``DEFAULT_TASK_CPU_DEMAND``): two tiny jobs share one CPU.
DEFAULT_CPU_DEMAND = 0.5

#: Rows ``queue`` returns by default besides every unfinished job (SkyPilot lists recent jobs).
DEFAULT_QUEUE_LIMIT = 200

_HINT = "Upgrade Styx on both ends so they speak one protocol."


def invalid(message: str) -> AgentError:
    """The typed error for a malformed request, reply or ``agent.json``."""
    return AgentError(message, _HINT, code="invalid-request")


def _protocol_error(
    path: str, code: str, message: str, hint: str, details: dict[str, Any] | None
) -> StyxError:
    return AgentError(
        message, _HINT, code="invalid-request", details={"reason": code, "path": path}
    )


_SOURCES: dict[str, Source] = {}


def fields(raw: object, what: str, cls: type[Any] | None = None, strict: bool = True) -> Value:
    """``raw`` as a checked JSON object named ``what`` (a field name, such as ``job_spec``);
    with ``cls`` and ``strict``, only the dataclass's fields may appear. Read its fields with
    the Value's ``*_at`` methods; every error is an AgentError ``invalid-request``."""
    src = _SOURCES.get(what)
    if src is None:
        src = _SOURCES[what] = Source(prefix=(what,), make_error=_protocol_error)
    known = None if cls is None or not strict else _known(cls)
    return Value(raw, (), src).obj(known)


_KNOWN: dict[type[Any], frozenset[str]] = {}


def _known(cls: type[Any]) -> frozenset[str]:
    known = _KNOWN.get(cls)
    if known is None:
        known = _KNOWN[cls] = frozenset(f.name for f in dataclasses.fields(cls))
    return known


# JobStatus is shared with the client's state layer, so it lives at the bottom of the house
# (styx.lifecycle); its values are this protocol's and never change.
TERMINAL_STATUSES = TERMINAL_JOB_STATUSES
#: Statuses that make a cluster busy (not idle) for autostop.
ACTIVE_STATUSES = ACTIVE_JOB_STATUSES
#: Which job status may follow which (terminal ones never change).
TRANSITIONS = JOB_TRANSITIONS


# --- job values ----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Demand:
    """What a job needs on each of its nodes. ``gpus`` may be fractional."""

    cpus: float = DEFAULT_CPU_DEMAND
    gpus: float = 0.0
    accelerator: str | None = None
    memory_gb: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "cpus": self.cpus,
            "gpus": self.gpus,
            "accelerator": self.accelerator,
            "memory_gb": self.memory_gb,
        }

    @classmethod
    def from_dict(cls, raw: object, strict: bool = True) -> Demand:
        d = fields(raw, "demand", cls, strict)
        return cls(
            cpus=d.number_at("cpus", DEFAULT_CPU_DEMAND),
            gpus=d.number_at("gpus", 0.0),
            accelerator=d.opt_text_at("accelerator"),
            memory_gb=d.opt_number_at("memory_gb"),
        )


@functools.lru_cache(maxsize=256)
def _cached_demand(cpus: Any, gpus: Any, accelerator: Any, memory_gb: Any) -> Demand:
    return Demand.from_dict(
        {"cpus": cpus, "gpus": gpus, "accelerator": accelerator, "memory_gb": memory_gb}
    )


def _demand_of(raw: object, strict: bool) -> Demand:
    """``Demand.from_dict`` with a cache: a queue reply repeats a few demands thousands of
    times."""
    if strict or not isinstance(raw, dict):
        return Demand.from_dict(raw, strict)
    try:
        return _cached_demand(
            raw.get("cpus", DEFAULT_CPU_DEMAND),
            raw.get("gpus", 0.0),
            raw.get("accelerator"),
            raw.get("memory_gb"),
        )
    except TypeError:  # an unhashable value: let the validator say what is wrong
        return Demand.from_dict(raw, strict)


@dataclasses.dataclass(frozen=True, slots=True)
class JobSpec:
    """A job to run on the cluster: ``setup`` then ``run`` under bash on ``num_nodes`` nodes.

    ``envs`` holds every variable the job sees, secrets included; the names in
    ``secret_env_names`` are secrets, whose values the agent keeps out of its database and logs.
    ``cpus=None`` means SkyPilot's default demand (:data:`DEFAULT_CPU_DEMAND`). ``cwd=None``
    runs in the user's home folder. Higher ``priority`` runs first.
    """

    name: str | None = None
    setup: str | None = None
    run: str | None = None
    envs: dict[str, str] = dataclasses.field(default_factory=dict)
    secret_env_names: list[str] = dataclasses.field(default_factory=list)
    num_nodes: int = 1
    cpus: float | None = None
    gpus: float = 0.0
    accelerator: str | None = None
    memory_gb: float | None = None
    cwd: str | None = None
    priority: int = 0
    user: str | None = None
    task_id: str | None = None

    def __post_init__(self) -> None:
        if self.num_nodes < 1:
            raise invalid("num_nodes must be at least 1.")
        if (self.cpus is not None and self.cpus < 0) or self.gpus < 0:
            raise invalid("cpus and gpus must not be negative.")

    @property
    def demand(self) -> Demand:
        """The per-node demand the scheduler honours (defaults filled in)."""
        cpus = DEFAULT_CPU_DEMAND if self.cpus is None else self.cpus
        return Demand(
            cpus=cpus, gpus=self.gpus, accelerator=self.accelerator, memory_gb=self.memory_gb
        )

    def public_envs(self) -> dict[str, str]:
        """``envs`` without the secrets: what may be written to disk."""
        secret = set(self.secret_env_names)
        return {k: v for k, v in self.envs.items() if k not in secret}

    def secret_envs(self) -> dict[str, str]:
        """Only the secret variables."""
        return {k: self.envs[k] for k in self.secret_env_names if k in self.envs}

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, raw: object, strict: bool = True) -> JobSpec:
        d = fields(raw, "job_spec", cls, strict)
        return cls(
            name=d.opt_text_at("name"),
            setup=d.opt_text_at("setup"),
            run=d.opt_text_at("run"),
            envs=d.text_map_at("envs"),
            secret_env_names=d.texts_at("secret_env_names"),
            num_nodes=d.integer_at("num_nodes", 1),
            cpus=d.opt_number_at("cpus"),
            gpus=d.number_at("gpus", 0.0),
            accelerator=d.opt_text_at("accelerator"),
            memory_gb=d.opt_number_at("memory_gb"),
            cwd=d.opt_text_at("cwd"),
            priority=d.integer_at("priority", 0),
            user=d.opt_text_at("user"),
            task_id=d.opt_text_at("task_id"),
        )


@dataclasses.dataclass(frozen=True, slots=True)
class JobRecord:
    """What the agent remembers about a job. Times are Unix seconds; ``nodes`` are the IPs the
    job ran on, in rank order."""

    job_id: int
    name: str | None
    status: JobStatus
    submitted_at: float
    started_at: float | None = None
    ended_at: float | None = None
    exit_code: int | None = None
    num_nodes: int = 1
    demand: Demand = dataclasses.field(default_factory=Demand)
    user: str | None = None
    log_dir: str = ""
    failure_reason: str | None = None
    priority: int = 0
    task_id: str | None = None
    nodes: list[str] = dataclasses.field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        # Written out (not dataclasses.asdict): `queue` sends thousands of these.
        return {
            "job_id": self.job_id,
            "name": self.name,
            "status": self.status.value,
            "submitted_at": self.submitted_at,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "exit_code": self.exit_code,
            "num_nodes": self.num_nodes,
            "demand": self.demand.to_dict(),
            "user": self.user,
            "log_dir": self.log_dir,
            "failure_reason": self.failure_reason,
            "priority": self.priority,
            "task_id": self.task_id,
            "nodes": list(self.nodes),
        }

    @classmethod
    def from_dict(cls, raw: object, strict: bool = False) -> JobRecord:
        d = fields(raw, "job_record", cls, strict)
        try:
            status = JobStatus(d.text_at("status"))
        except ValueError as e:
            raise invalid(f"Unknown job status {d.raw.get('status')!r}.") from e
        return cls(
            job_id=d.integer_at("job_id"),
            name=d.opt_text_at("name"),
            status=status,
            submitted_at=d.number_at("submitted_at"),
            started_at=d.opt_number_at("started_at"),
            ended_at=d.opt_number_at("ended_at"),
            exit_code=d.opt_integer_at("exit_code"),
            num_nodes=d.integer_at("num_nodes", 1),
            demand=_demand_of(d.raw.get("demand", {}), strict),
            user=d.opt_text_at("user"),
            log_dir=d.text_at("log_dir", ""),
            failure_reason=d.opt_text_at("failure_reason"),
            priority=d.integer_at("priority", 0),
            task_id=d.opt_text_at("task_id"),
            nodes=d.texts_at("nodes"),
        )


# --- cluster config (agent.json) ------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class NodeInfo:
    """One node of the cluster as the provisioner sees it."""

    ip: str
    name: str
    cpus: float
    memory_gb: float
    gpus: float = 0.0
    accelerator: str | None = None

    @classmethod
    def from_dict(cls, raw: object, strict: bool = True) -> NodeInfo:
        d = fields(raw, "node", cls, strict)
        return cls(
            ip=d.text_at("ip"),
            name=d.text_at("name"),
            cpus=d.number_at("cpus"),
            memory_gb=d.number_at("memory_gb"),
            gpus=d.number_at("gpus", 0.0),
            accelerator=d.opt_text_at("accelerator"),
        )


@dataclasses.dataclass(frozen=True, slots=True)
class AutostopConfig:
    """Stop (or tear down, if ``down``) the cluster after ``idle_minutes`` without active jobs.
    ``idle_minutes=None`` disables autostop; ``0`` stops as soon as the cluster is idle."""

    idle_minutes: int | None = None
    down: bool = False

    @classmethod
    def from_dict(cls, raw: object, strict: bool = True) -> AutostopConfig:
        d = fields(raw, "autostop", cls, strict)
        minutes = d.opt_integer_at("idle_minutes")
        if minutes is not None and minutes < 0:
            raise invalid("idle_minutes must be >= 0, or null to disable autostop.")
        return cls(idle_minutes=minutes, down=d.boolean_at("down", False))


@dataclasses.dataclass(frozen=True, slots=True)
class AgentConfig:
    """``agent.json``: written by the provisioner, read by the agent at start.

    ``nodes`` are in rank order, the head first. ``ray_address`` is the head's ``ip:port`` of
    the cluster's own (Styx-owned port) Ray. ``stop_command``/``down_command`` are argv lists
    the agent runs when autostop fires. ``env`` is exported to every job. ``cloud``, ``region``
    and ``zone`` fill ``SKYPILOT_CLUSTER_INFO``.
    """

    cluster_name: str
    styx_version: str
    ray_address: str
    nodes: list[NodeInfo]
    autostop: AutostopConfig = dataclasses.field(default_factory=AutostopConfig)
    stop_command: list[str] = dataclasses.field(default_factory=list)
    down_command: list[str] = dataclasses.field(default_factory=list)
    env: dict[str, str] = dataclasses.field(default_factory=dict)
    cloud: str | None = None
    region: str | None = None
    zone: str | None = None

    def __post_init__(self) -> None:
        if not self.nodes:
            raise invalid("agent.json must list at least the head node.")

    @property
    def head(self) -> NodeInfo:
        return self.nodes[0]

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> AgentConfig:
        try:
            d = fields(json.loads(text), "agent_json", cls)
        except json.JSONDecodeError as e:
            raise invalid(f"agent.json is not valid JSON: {e}.") from e
        return cls(
            cluster_name=d.text_at("cluster_name"),
            styx_version=d.text_at("styx_version"),
            ray_address=d.text_at("ray_address"),
            nodes=[NodeInfo.from_dict(n.raw) for n in d.child("nodes", d.raw.get("nodes")).items()],
            autostop=AutostopConfig.from_dict(d.raw.get("autostop", {})),
            stop_command=d.texts_at("stop_command"),
            down_command=d.texts_at("down_command"),
            env=d.text_map_at("env"),
            cloud=d.opt_text_at("cloud"),
            region=d.opt_text_at("region"),
            zone=d.opt_text_at("zone"),
        )

    def write(self, root: str | os.PathLike[str]) -> Path:
        """Atomically write ``agent.json`` into ``root`` (created if missing)."""
        path = Path(root) / CONFIG_NAME
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, self.to_json())
        return path

    @classmethod
    def load(cls, root: str | os.PathLike[str]) -> AgentConfig:
        return cls.from_json((Path(root) / CONFIG_NAME).read_text())


# --- envelopes ------------------------------------------------------------------------------

OPS = frozenset(
    {"ping", "submit", "queue", "job", "cancel", "tail_logs", "wait", "set_autostop", "status"}
)


def encode(message: Mapping[str, Any]) -> bytes:
    """One wire line."""
    return json.dumps(message, separators=(",", ":")).encode() + b"\n"


def request(op: str, args: Mapping[str, Any] | None = None) -> dict[str, Any]:
    return {"v": PROTOCOL_VERSION, "op": op, "args": dict(args or {})}


def ok_reply(result: Any) -> dict[str, Any]:
    return {"v": PROTOCOL_VERSION, "ok": True, "result": result}


def error_reply(code: str, message: str, hint: str) -> dict[str, Any]:
    return {
        "v": PROTOCOL_VERSION,
        "ok": False,
        "error": {"code": code, "message": message, "hint": hint},
    }


def chunk_reply(data: bytes) -> dict[str, Any]:
    """One streamed piece of a job's log: its bytes, whatever their encoding."""
    return {"v": PROTOCOL_VERSION, "data": base64.b64encode(data).decode("ascii")}


def is_chunk(reply: Mapping[str, Any]) -> bool:
    return "data" in reply and "ok" not in reply


def chunk_bytes(reply: Mapping[str, Any]) -> bytes:
    """The bytes of a :func:`chunk_reply`; AgentError ``invalid-reply`` when not base64."""
    try:
        return base64.b64decode(str(reply["data"]), validate=True)
    except (ValueError, binascii.Error) as e:
        raise AgentError(
            f"The agent sent a log chunk that is not base64: {e}.",
            "Run `styx start CLUSTER` to restart the agent at this Styx's version.",
            code="invalid-reply",
        ) from e


def heartbeat_reply() -> dict[str, Any]:
    """Sent during a long request: the agent still works on it."""
    return {"v": PROTOCOL_VERSION, "alive": True}


def is_heartbeat(reply: Mapping[str, Any]) -> bool:
    return reply.get("alive") is True and "ok" not in reply


def parse_request(line: bytes) -> tuple[str, dict[str, Any]]:
    """Decode and check one request line; raises a typed :class:`AgentError`."""
    try:
        msg = fields(json.loads(line), "request").raw
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise invalid(f"Request is not valid JSON: {e}.") from e
    version = msg.get("v")
    if version != PROTOCOL_VERSION:
        raise AgentError(
            f"The agent speaks protocol {PROTOCOL_VERSION} but the request uses {version!r}.",
            "Run `python -m styx.agent ensure` (or `styx start`) to restart the agent at the "
            "version of the Styx you run.",
            code="agent-protocol-mismatch",
        )
    op = msg.get("op")
    if not isinstance(op, str) or op not in OPS:
        raise invalid(f"Unknown operation {op!r}; expected one of {sorted(OPS)}.")
    args: dict[str, Any] = fields(msg.get("args", {}), "args").raw
    return op, args
