"""A managed job's recovery policy, read once from its task's ``job_recovery``.

The controller asks this module what to do when an attempt ends; the policy itself is plain
data (:class:`Recovery`), parsed by the spec layer, so an unknown strategy is the same
:class:`~styx.errors.SpecError` that ``styx validate`` reports.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from styx.spec.check import root
from styx.spec.policies import RecoveryStrategy, parse_job_recovery


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
