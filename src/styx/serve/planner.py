"""What a service's replica set should become: pure decisions, from counts and measurements.

:class:`Autoscaler` turns the request rate the load balancer measured into a target replica
count, with SkyServe's hysteresis: the target must call for more replicas for
``upscale_delay_s`` in a row before it rises (fewer, ``downscale_delay_s``, before it falls).
Scaling up from zero does not wait: a request is already waiting for a replica.

:func:`plan` turns the target and the replicas as they are into actions: how many spot and
on-demand replicas to launch, and which replicas to drain (scaled down, or replaced by a newer
version). Nothing here does I/O, so every rule is unit-tested (tests/serve/test_planner.py).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

from styx.spec.service import ServiceSpec


@dataclasses.dataclass(slots=True)
class Autoscaler:
    """The target replica count of one service, updated once per controller tick."""

    spec: ServiceSpec
    target: int = -1  # -1: not decided yet (starts at min_replicas)
    _wants_up_since: float | None = None
    _wants_down_since: float | None = None

    def decide(self, qps: float, now: float) -> int:
        """The target after a tick that measured ``qps`` requests per second at ``now``."""
        spec = self.spec
        if self.target < 0:
            self.target = spec.min_replicas
        if not spec.autoscales or spec.target_qps is None:
            self.target = spec.min_replicas
            return self.target
        wanted = math.ceil(qps / spec.target_qps) if qps > 0 else 0
        wanted = max(spec.min_replicas, min(spec.max_replicas, wanted))
        if wanted > self.target:
            self._wants_down_since = None
            if self.target == 0:  # from zero: a request already waits
                self.target, self._wants_up_since = max(1, wanted), None
            elif self._wants_up_since is None:
                self._wants_up_since = now
            if (
                self._wants_up_since is not None
                and now - self._wants_up_since >= spec.upscale_delay_s
            ):
                self.target, self._wants_up_since = wanted, None
        elif wanted < self.target:
            self._wants_up_since = None
            if self._wants_down_since is None:
                self._wants_down_since = now
            if now - self._wants_down_since >= spec.downscale_delay_s:
                self.target, self._wants_down_since = wanted, None
        else:
            self._wants_up_since = self._wants_down_since = None
        return self.target


@dataclasses.dataclass(frozen=True, slots=True)
class Seen:
    """A live replica as the planner sees it."""

    replica_id: int
    version: int
    spot: bool
    ready: bool
    launching: bool  # PROVISIONING or STARTING
    draining: bool


@dataclasses.dataclass(frozen=True, slots=True)
class Plan:
    """What to do this tick."""

    launch_spot: int = 0
    launch_ondemand: int = 0
    drain: tuple[int, ...] = ()


def _pick_to_drain(replicas: Sequence[Seen], n: int) -> list[int]:
    """``n`` replicas to let go: those not READY first (launching ones last of those, as
    they may be nearly ready), then the newest READY ones."""
    order = sorted(replicas, key=lambda r: (r.ready, not r.launching, -r.replica_id))
    return [r.replica_id for r in order[: max(0, n)]]


def plan(
    spec: ServiceSpec,
    target: int,
    version: int,
    replicas: Sequence[Seen],
    *,
    task_spot: bool,
    mode: str = "rolling",
    may_launch: bool = True,
) -> Plan:
    """The actions that move ``replicas`` toward ``target`` replicas of ``version``.

    On-demand and spot: with a spot task, ``base_ondemand`` of the target are on-demand, and
    with ``dynamic_ondemand`` so is every spot replica missing from READY (dropped again once
    the spot replicas are READY). Older versions: ``rolling`` keeps as many READY old replicas
    as the new version still lacks; ``blue_green`` keeps them all until the new version has
    ``target`` READY, then lets them all go.
    """
    live = [r for r in replicas if not r.draining]
    current = [r for r in live if r.version == version]
    old = [r for r in live if r.version != version]
    drain: list[int] = []
    if task_spot:
        base = min(spec.base_ondemand, target)
        spot_target = target - base
        spots = [r for r in current if r.spot]
        ondemand = [r for r in current if not r.spot]
        ready_spot = sum(r.ready for r in spots)
        od_target = base + (max(0, spot_target - ready_spot) if spec.dynamic_ondemand else 0)
        launch_spot = max(0, spot_target - len(spots))
        launch_od = max(0, od_target - len(ondemand))
        drain += _pick_to_drain(spots, len(spots) - spot_target)
        drain += _pick_to_drain(ondemand, len(ondemand) - od_target)
    else:
        launch_spot, launch_od = 0, max(0, target - len(current))
        drain += _pick_to_drain(current, len(current) - target)
    ready_current = sum(r.ready for r in current if r.replica_id not in drain)
    if mode == "blue_green":
        keep_old = 0 if ready_current >= target else len(old)
    else:
        keep_old = max(0, target - ready_current)
    ready_old = [r for r in old if r.ready]
    drain += [r.replica_id for r in old if not r.ready]  # an old one not serving is no help
    drain += _pick_to_drain(ready_old, len(ready_old) - keep_old)
    if not may_launch:
        launch_spot = launch_od = 0
    return Plan(launch_spot, launch_od, tuple(drain))
