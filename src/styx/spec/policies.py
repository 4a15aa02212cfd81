"""Lifecycle policies inside ``resources:``: ``autostop`` and ``job_recovery``."""

from __future__ import annotations

import dataclasses
import enum
import re
from typing import Any

from styx.spec.check import MAX_INT, Value

_TIME = re.compile(r"\s*(\d+)\s*([mhdwMHDW]?)\s*")
_TIME_MINUTES = {"": 1, "m": 1, "h": 60, "d": 60 * 24, "w": 60 * 24 * 7}


class RecoveryStrategy(enum.StrEnum):
    """Where a managed job goes after its cluster is lost (SkyPilot's strategy names).

    ``FAILOVER``: anywhere that fits, its last region first; ``EAGER_NEXT_REGION``: another
    region first, its last one only when nothing else fits; ``NONE``: not recovered (the job
    fails).
    """

    FAILOVER = "FAILOVER"
    EAGER_NEXT_REGION = "EAGER_NEXT_REGION"
    NONE = "NONE"


RECOVERY_STRATEGIES = tuple(s.value for s in RecoveryStrategy)
AUTOSTOP_WAIT_FOR = ("jobs_and_ssh", "jobs", "none")


@dataclasses.dataclass(frozen=True, slots=True)
class Autostop:
    """Stop (or with ``down``, tear down) the cluster after ``idle_minutes`` idle; None
    minutes means the default."""

    enabled: bool = True
    idle_minutes: int | None = None
    down: bool = False
    wait_for: str | None = None
    hook: str | None = None
    hook_timeout: int | None = None

    def to_yaml(self) -> Any:
        if not self.enabled:
            return False
        extra = (self.down, self.wait_for, self.hook, self.hook_timeout)
        if not any(extra):
            return True if self.idle_minutes is None else self.idle_minutes
        out: dict[str, Any] = {"idle_minutes": self.idle_minutes, "down": self.down or None}
        out.update(wait_for=self.wait_for, hook=self.hook, hook_timeout=self.hook_timeout)
        return {k: x for k, x in out.items() if x is not None}


def parse_autostop(v: Value) -> Autostop:
    """``true``/``false``, minutes (``10``), a duration (``"10h"``), or a mapping."""
    raw = v.raw
    if isinstance(raw, bool):
        return Autostop(enabled=raw)
    if isinstance(raw, int):
        return Autostop(idle_minutes=v.integer(minimum=0))
    if isinstance(raw, str):
        match = _TIME.fullmatch(raw)
        if match is None:
            v.bad_value(
                f"'{v.name}' is not a duration, {v.what()}.", "Write minutes, or '10m', '2h', '1d'."
            )
        minutes = int(match.group(1)) * _TIME_MINUTES[match.group(2).lower()]
        v.check_range(minutes, 0, MAX_INT)
        return Autostop(idle_minutes=minutes)
    if not isinstance(raw, dict):
        v.wrong_type("true, false, a number of minutes, or a mapping with idle_minutes")
    f = v.fields(("idle_minutes", "down", "wait_for", "hook", "hook_timeout"))
    return Autostop(
        idle_minutes=f["idle_minutes"].integer(minimum=0) if "idle_minutes" in f else None,
        down=f["down"].boolean() if "down" in f else False,
        wait_for=f["wait_for"].choice(AUTOSTOP_WAIT_FOR) if "wait_for" in f else None,
        hook=f["hook"].string() if "hook" in f else None,
        hook_timeout=f["hook_timeout"].integer(minimum=1) if "hook_timeout" in f else None,
    )


@dataclasses.dataclass(frozen=True, slots=True)
class JobRecovery:
    """How a managed job recovers: the strategy, and restarts on user-code failures."""

    strategy: RecoveryStrategy | None = None
    max_restarts_on_errors: int | None = None
    recover_on_exit_codes: tuple[int, ...] = ()

    def to_yaml(self) -> Any:
        strategy = None if self.strategy is None else self.strategy.value
        if self.max_restarts_on_errors is None and not self.recover_on_exit_codes:
            return strategy
        out: dict[str, Any] = {"strategy": strategy}
        if self.max_restarts_on_errors is not None:
            out["max_restarts_on_errors"] = self.max_restarts_on_errors
        if self.recover_on_exit_codes:
            out["recover_on_exit_codes"] = list(self.recover_on_exit_codes)
        return out


def parse_job_recovery(v: Value) -> JobRecovery:
    """A strategy name, or a mapping of strategy, max_restarts_on_errors and
    recover_on_exit_codes (one code or a list). An unknown strategy is a SpecError
    (``invalid-value``, with a did-you-mean)."""
    if isinstance(v.raw, str):
        return JobRecovery(RecoveryStrategy(v.choice(RECOVERY_STRATEGIES)))
    if not isinstance(v.raw, dict):
        v.wrong_type("a strategy name or a mapping with 'strategy'")
    f = v.fields(("strategy", "max_restarts_on_errors", "recover_on_exit_codes"))
    codes: tuple[int, ...] = ()
    if "recover_on_exit_codes" in f:
        item = f["recover_on_exit_codes"]
        values = item.items() if isinstance(item.raw, list) else [item]
        codes = tuple(c.integer(minimum=0, maximum=255) for c in values)
        if len(set(codes)) != len(codes):
            item.bad_value(f"'{item.name}' lists an exit code twice.", "Remove the repeated code.")
    strategy = f["strategy"].choice(RECOVERY_STRATEGIES) if "strategy" in f else None
    return JobRecovery(
        None if strategy is None else RecoveryStrategy(strategy),
        f["max_restarts_on_errors"].integer(minimum=0) if "max_restarts_on_errors" in f else None,
        codes,
    )
