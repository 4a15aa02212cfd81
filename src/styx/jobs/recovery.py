"""A managed job's recovery policy, read once from its task's ``job_recovery``, and the
decisions made from it.

The controller asks :func:`after_run` or :func:`after_launch` what to do when an attempt
ends, with the typed :class:`~styx.state.records.TerminationReason` of the end; the reason's
``retry`` says whether it may be tried again at all, and the policy and budgets bound it. The
policy itself is plain data (:class:`Recovery`), parsed by the spec layer, so an unknown
strategy is the same :class:`~styx.errors.SpecError` that ``styx validate`` reports.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from styx.spec.check import root
from styx.spec.policies import RecoveryStrategy, parse_job_recovery
from styx.state.records import Retry, TerminationReason


@dataclasses.dataclass(frozen=True, slots=True)
class Recovery:
    """A job's ``job_recovery`` settings, with SkyPilot's defaults filled in."""

    strategy: RecoveryStrategy = RecoveryStrategy.FAILOVER
    max_restarts_on_errors: int = 0
    recover_on_exit_codes: frozenset[int] = frozenset()

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> Recovery:
        """The policy of a stored task spec (``Task.to_dict()``); raises SpecError when its
        ``resources.job_recovery`` is invalid (an unknown strategy, a negative count ...)."""
        resources = spec.get("resources")
        raw = resources.get("job_recovery") if isinstance(resources, Mapping) else None
        if raw is None:
            return cls()
        parsed = parse_job_recovery(root(raw, prefix=("resources", "job_recovery")))
        return cls(
            parsed.strategy or RecoveryStrategy.FAILOVER,
            parsed.max_restarts_on_errors or 0,
            frozenset(parsed.recover_on_exit_codes),
        )


@dataclasses.dataclass(frozen=True, slots=True)
class Decision:
    """What the controller does after an attempt ended: try again, or end the job with
    ``reason`` (its status is ``reason.status``).

    ``keep_cluster``: run again on the same machines (a restart after the user's code failed);
    ``spend_restart``: the try counts against ``max_restarts_on_errors``.
    """

    retry: bool
    reason: TerminationReason
    keep_cluster: bool = False
    spend_restart: bool = False


def after_run(
    reason: TerminationReason, recovery: Recovery, *, exit_code: int | None, restarts: int
) -> Decision:
    """The decision after a job that was running ended for ``reason`` (``restarts``: user
    errors restarted so far)."""
    if reason.retry is Retry.RESTART:
        if exit_code in recovery.recover_on_exit_codes:  # the user says: recover, for free
            return Decision(True, reason)
        if restarts < recovery.max_restarts_on_errors:
            return Decision(True, reason, keep_cluster=True, spend_restart=True)
        spent = recovery.max_restarts_on_errors > 0
        return Decision(False, TerminationReason.MAX_RESTARTS_REACHED if spent else reason)
    if reason.retry is Retry.RECOVER:
        if recovery.strategy is RecoveryStrategy.NONE:
            return Decision(False, TerminationReason.RECOVERY_DISABLED)
        return Decision(True, reason)
    return Decision(False, reason)


def after_launch(
    reason: TerminationReason, *, recovering: bool, failures: int, retries: int
) -> Decision:
    """The decision after a launch failed for ``reason``. A recovery waits for capacity to
    come back, as SkyPilot's does; a first launch gives up when nothing has room, and retries
    a launch that broke (``INFRA_ERROR``) ``retries`` times (``failures``: so far)."""
    if reason.retry is not Retry.RELAUNCH:
        return Decision(False, reason)
    if recovering or (reason is TerminationReason.INFRA_ERROR and failures < retries):
        return Decision(True, reason)
    return Decision(False, reason)
