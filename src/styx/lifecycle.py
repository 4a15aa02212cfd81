"""Statuses shared across layers, and the transition tables that say which may follow which.

At the bottom of the house (it imports only :mod:`styx.errors`), because the job-on-a-cluster
status is used by the head-node agent (its job table and wire protocol,
:mod:`styx.agent.protocol`) and by the client's state layer (its copy of each cluster's jobs,
:mod:`styx.state.records` calls it ``ClusterJobStatus``), and neither may import the other's
package for it. The state layer's own statuses (clusters, managed jobs, DAG runs) use
:class:`TransitionTable` too.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterable, Mapping
from typing import Generic, TypeVar

from styx.errors import IllegalTransition

E = TypeVar("E", bound=enum.StrEnum)


@dataclasses.dataclass(frozen=True, slots=True)
class TransitionTable(Generic[E]):
    """Which status of an entity ``kind`` may follow which.

    ``initial``: the statuses a new entity may start in; ``moves[s]``: the statuses that may
    follow ``s`` (a status absent from ``moves`` is final). Staying in a status is not a
    transition. ``deletable``: whether the entity may be removed (its last transition goes to
    no status).
    """

    kind: str
    initial: frozenset[E]
    moves: Mapping[E, frozenset[E]]
    deletable: bool = False

    def allows(self, old: E | None, new: E | None) -> bool:
        """Whether ``old -> new`` is allowed; None is "no entity" (created / deleted)."""
        if old is None:
            return new is not None and new in self.initial
        if new is None:
            return self.deletable
        return old == new or new in self.moves.get(old, frozenset())

    def check(self, entity_id: object, old: E | None, new: E | None) -> None:
        """Raise :class:`~styx.errors.IllegalTransition` unless ``old -> new`` is allowed."""
        if not self.allows(old, new):
            raise IllegalTransition(
                str(self.kind),
                str(entity_id),
                None if old is None else old.value,
                None if new is None else new.value,
            )

    def pairs(self) -> Iterable[tuple[E | None, E | None]]:
        """Every allowed transition, creation and deletion included (for docs and tests)."""
        yield from ((None, s) for s in sorted(self.initial))
        for old, news in self.moves.items():
            yield from ((old, new) for new in sorted(news))
        if self.deletable:
            yield from ((s, None) for s in sorted({*self.initial, *self.moves}))


def table(
    kind: str, initial: Iterable[E], moves: Mapping[E, Iterable[E]], *, deletable: bool = False
) -> TransitionTable[E]:
    """A :class:`TransitionTable` from plain iterables."""
    return TransitionTable(
        kind, frozenset(initial), {s: frozenset(n) for s, n in moves.items()}, deletable
    )


class JobStatus(enum.StrEnum):
    """A job on a cluster, as its head-node agent runs it; the names and meanings are
    SkyPilot's. The values are part of the agent's wire protocol: never rename one."""

    INIT = "INIT"
    PENDING = "PENDING"
    SETTING_UP = "SETTING_UP"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    FAILED_SETUP = "FAILED_SETUP"
    FAILED_DRIVER = "FAILED_DRIVER"  # the job's node or driver died, not its code
    CANCELLED = "CANCELLED"

    @property
    def is_terminal(self) -> bool:
        """True once the job has ended; a terminal status never changes again."""
        return self in TERMINAL_JOB_STATUSES

    def can_become(self, new: JobStatus) -> bool:
        """Whether the transition ``self -> new`` is allowed (see :data:`JOB_TRANSITIONS`)."""
        return self is not new and JOB_TRANSITIONS.allows(self, new)


TERMINAL_JOB_STATUSES = frozenset(
    {
        JobStatus.SUCCEEDED,
        JobStatus.FAILED,
        JobStatus.FAILED_SETUP,
        JobStatus.FAILED_DRIVER,
        JobStatus.CANCELLED,
    }
)
#: Statuses that make a cluster busy (not idle) for autostop.
ACTIVE_JOB_STATUSES = frozenset({JobStatus.PENDING, JobStatus.SETTING_UP, JobStatus.RUNNING})

_J = JobStatus
_ENDINGS = [_J.CANCELLED, _J.FAILED_DRIVER]  # any unfinished job: cancelled, or its node died
#: A job is accepted INIT, queued PENDING, set up (or not) and run; terminal statuses are final.
JOB_TRANSITIONS = table(
    "cluster_job",
    [_J.INIT],
    {
        _J.INIT: [_J.PENDING, *_ENDINGS],
        _J.PENDING: [_J.SETTING_UP, _J.RUNNING, _J.FAILED, *_ENDINGS],
        _J.SETTING_UP: [_J.RUNNING, _J.FAILED_SETUP, _J.FAILED, *_ENDINGS],
        _J.RUNNING: [_J.SUCCEEDED, _J.FAILED, *_ENDINGS],
    },
)
