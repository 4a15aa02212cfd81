"""One tree of errors for all of Styx.

Every error a user can meet is a :class:`StyxError` with a stable ``code`` (kebab-case, never
renamed once shipped), a one-sentence ``message`` saying what happened, and a one-sentence
``hint`` saying what to do. The CLI renders them without a traceback; ``--debug`` adds it.
Lower layers translate foreign exceptions at their boundary with ``raise ... from``.

::

    StyxError                         internal            exit 70
    +-- IllegalTransition             illegal-transition  exit 70
    +-- UserInputError                invalid-input       exit 2
    |   +-- SpecError                 (yaml-syntax, unknown-key, invalid-type, invalid-value,
    |   |                              missing-field, dag-cycle, unknown-dependency,
    |   |                              duplicate-task, file-not-found, ...)
    |   +-- ConfigError               invalid-config
    |   +-- UsageError                invalid-usage
    +-- NotSupportedError             not-supported       exit 4
    +-- NotFoundError                 not-found           exit 3
    |   +-- ClusterNotFound           cluster-not-found
    |   +-- JobNotFound               job-not-found
    +-- ConflictError                 conflict            exit 5
    |   +-- ClusterBusy               cluster-busy
    |   +-- ClusterNotUp              cluster-not-up
    +-- ResourcesUnavailable          resources-unavailable exit 6
    |   +-- NoCapacity                no-capacity
    |   +-- QuotaExceeded             quota-exceeded
    |   +-- AuthFailed                auth-failed
    +-- RemoteError                   remote-error        exit 7
    |   +-- HostUnreachable           host-unreachable
    |   +-- AgentError                agent-error
    +-- StateError                    state-error         exit 8
    +-- Interrupted                   interrupted         exit 130

Every code (the class codes here and the finer ones raising sites give) is registered once,
with its exit code and meaning, in :mod:`styx.codes`, from which docs/exit-codes.md is made.
A job's own exit code is returned by ``launch``/``exec`` when they wait for the job, as
SkyPilot does.

A :class:`ResourcesUnavailable` carries a typed :class:`FailoverScope` (``scope``): what a
failover should rule out after it, one zone, a whole region or the whole cloud.
"""

from __future__ import annotations

import dataclasses
import enum
from typing import Any, ClassVar


@dataclasses.dataclass(frozen=True, slots=True)
class Location:
    """Where in the user's input an error lies. Lines and columns are 1-based."""

    file: str | None = None
    line: int | None = None
    column: int | None = None
    path: str | None = None  # YAML path such as ``resources.accelerators`` or ``[1].run``

    def __str__(self) -> str:
        parts: list[str] = []
        if self.file:
            where = self.file
            if self.line is not None:
                where += f":{self.line}"
                if self.column is not None:
                    where += f":{self.column}"
            parts.append(where)
        elif self.line is not None:
            parts.append(f"line {self.line}" + (f", column {self.column}" if self.column else ""))
        if self.path:
            parts.append(f"at '{self.path}'")
        return " ".join(parts)


class StyxError(Exception):
    """Base of every error Styx reports to a user.

    ``code`` is stable and machine-readable; ``message`` is one sentence saying what happened;
    ``hint`` is one sentence saying what to do.
    """

    code: ClassVar[str] = "internal"
    exit_code: ClassVar[int] = 70
    default_hint: ClassVar[str] = (
        "This is a bug in Styx; please report it with the output of --debug."
    )

    def __init__(
        self,
        message: str,
        hint: str | None = None,
        *,
        location: Location | None = None,
        code: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint if hint is not None else self.default_hint
        self.location = location
        self.details: dict[str, Any] = dict(details or {})
        if code is not None:
            # Instance-level refinement of the class code (e.g. SpecError('unknown-key')).
            self.code = code  # type: ignore[misc]

    def __str__(self) -> str:
        loc = f"{self.location}: " if self.location else ""
        return f"[{self.code}] {loc}{self.message}"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form, used by ``--json`` output and the agent protocol."""
        out: dict[str, Any] = {"code": self.code, "message": self.message, "hint": self.hint}
        if self.location is not None:
            out["location"] = {
                k: v for k, v in dataclasses.asdict(self.location).items() if v is not None
            }
        if self.details:
            out["details"] = self.details
        return out


class IllegalTransition(StyxError):
    """A status change that the entity's transition table refuses (a bug in Styx: nothing
    was written). ``details`` holds ``kind``, ``id``, ``from`` and ``to``."""

    code: ClassVar[str] = "illegal-transition"

    def __init__(self, kind: str, entity_id: str, old: str | None, new: str | None) -> None:
        def shown(status: str | None) -> str:
            return "(none)" if status is None else status

        super().__init__(
            f"The {kind.replace('_', ' ')} {entity_id!r} cannot go from {shown(old)} to "
            f"{shown(new)}.",
            details={"kind": kind, "id": entity_id, "from": old, "to": new},
        )


class UserInputError(StyxError):
    """The user's input (a file, a flag, a name) is wrong."""

    code: ClassVar[str] = "invalid-input"
    exit_code: ClassVar[int] = 2
    default_hint: ClassVar[str] = "Fix the input and run the command again."


class SpecError(UserInputError):
    """A task, DAG or resources description is invalid; ``code`` says how."""

    code: ClassVar[str] = "invalid-spec"
    default_hint: ClassVar[str] = (
        "Fix the task file; `styx validate FILE` checks it without launching."
    )


class ConfigError(UserInputError):
    """``~/.styx/config.yaml`` (or another config source) is invalid."""

    code: ClassVar[str] = "invalid-config"
    default_hint: ClassVar[str] = "Fix the config file; its schema follows SkyPilot's config.yaml."


class UsageError(UserInputError):
    """Command-line flags or arguments are wrong."""

    code: ClassVar[str] = "invalid-usage"
    default_hint: ClassVar[str] = "Run the command with --help to see its options."


class NotSupportedError(StyxError):
    """The request is valid but Styx does not run it yet (or not on this infra)."""

    code: ClassVar[str] = "not-supported"
    exit_code: ClassVar[int] = 4
    default_hint: ClassVar[str] = "Remove the field or choose infra that supports it."


class NotFoundError(StyxError):
    """A named thing does not exist."""

    code: ClassVar[str] = "not-found"
    exit_code: ClassVar[int] = 3
    default_hint: ClassVar[str] = "Check the name; `styx status` lists clusters."


class ClusterNotFound(NotFoundError):
    code: ClassVar[str] = "cluster-not-found"
    default_hint: ClassVar[str] = (
        "Run `styx status` to list clusters, or `styx launch` to create one."
    )


class JobNotFound(NotFoundError):
    code: ClassVar[str] = "job-not-found"
    default_hint: ClassVar[str] = "Run `styx queue CLUSTER` to list the cluster's jobs."


class ConflictError(StyxError):
    """The request clashes with the current state of a cluster or job."""

    code: ClassVar[str] = "conflict"
    exit_code: ClassVar[int] = 5
    default_hint: ClassVar[str] = "Check `styx status` and try again."


class ClusterBusy(ConflictError):
    code: ClassVar[str] = "cluster-busy"
    default_hint: ClassVar[str] = "Another Styx command holds this cluster; wait for it and retry."


class ClusterNotUp(ConflictError):
    code: ClassVar[str] = "cluster-not-up"
    default_hint: ClassVar[str] = "Start it with `styx start CLUSTER` or launch it again."


class FailoverScope(enum.StrEnum):
    """What a failed attempt to get resources rules out for the next attempt.

    ``ZONE``: only the zone tried (no capacity there now); ``REGION``: every zone of the
    region (a regional quota, an image or instance type missing there); ``CLOUD``: every
    region of the infra (credentials refused).
    """

    ZONE = "zone"
    REGION = "region"
    CLOUD = "cloud"


class ResourcesUnavailable(StyxError):
    """No infrastructure could provide the requested resources.

    ``scope`` says what a failover should block after this error; None when the raiser cannot
    tell (the caller then decides, or gives up). Subclasses have a ``default_scope``.
    """

    code: ClassVar[str] = "resources-unavailable"
    exit_code: ClassVar[int] = 6
    default_hint: ClassVar[str] = "Relax the resource request or enable more infra (`styx check`)."
    default_scope: ClassVar[FailoverScope | None] = None

    def __init__(
        self,
        message: str,
        hint: str | None = None,
        *,
        scope: FailoverScope | None = None,
        location: Location | None = None,
        code: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message, hint, location=location, code=code, details=details)
        self.scope: FailoverScope | None = (
            FailoverScope(scope) if scope is not None else self.default_scope
        )

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        if self.scope is not None:
            out["scope"] = self.scope.value
        return out


class NoCapacity(ResourcesUnavailable):
    """No capacity where it was tried; the raiser says whether a zone or a region."""

    code: ClassVar[str] = "no-capacity"
    default_hint: ClassVar[str] = "Try another zone, region or cloud, or retry later."


class QuotaExceeded(ResourcesUnavailable):
    """An account limit: regional unless the raiser says otherwise."""

    code: ClassVar[str] = "quota-exceeded"
    default_hint: ClassVar[str] = "Ask the provider for a larger quota, or use another region."
    default_scope: ClassVar[FailoverScope | None] = FailoverScope.REGION


class AuthFailed(ResourcesUnavailable):
    """The infra refused the credentials: no region of it will do better."""

    code: ClassVar[str] = "auth-failed"
    default_hint: ClassVar[str] = "Check the credentials with `styx check`."
    default_scope: ClassVar[FailoverScope | None] = FailoverScope.CLOUD


class RemoteError(StyxError):
    """Talking to a cluster's machines or its agent failed."""

    code: ClassVar[str] = "remote-error"
    exit_code: ClassVar[int] = 7
    default_hint: ClassVar[str] = "Run `styx status -r` to refresh the cluster's state."


class HostUnreachable(RemoteError):
    code: ClassVar[str] = "host-unreachable"
    default_hint: ClassVar[str] = "Check that the host is up and reachable over SSH."


class AgentError(RemoteError):
    code: ClassVar[str] = "agent-error"
    default_hint: ClassVar[str] = "Run `styx status -r`; the agent restarts itself if it died."


class StateError(StyxError):
    """The local state database failed."""

    code: ClassVar[str] = "state-error"
    exit_code: ClassVar[int] = 8
    default_hint: ClassVar[str] = (
        "Check STYX_HOME / STYX_DB_URL and that the database is reachable."
    )


class Interrupted(StyxError):
    """The user interrupted the command."""

    code: ClassVar[str] = "interrupted"
    exit_code: ClassVar[int] = 130
    default_hint: ClassVar[str] = "Run the command again to resume; nothing was left half-done."


__all__ = [
    "AgentError",
    "AuthFailed",
    "ClusterBusy",
    "ClusterNotFound",
    "ClusterNotUp",
    "ConfigError",
    "ConflictError",
    "FailoverScope",
    "HostUnreachable",
    "IllegalTransition",
    "Interrupted",
    "JobNotFound",
    "Location",
    "NoCapacity",
    "NotFoundError",
    "NotSupportedError",
    "QuotaExceeded",
    "RemoteError",
    "ResourcesUnavailable",
    "SpecError",
    "StateError",
    "StyxError",
    "UsageError",
    "UserInputError",
]
