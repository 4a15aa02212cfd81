"""The autoscaler's hysteresis and the planner's decisions: pure functions, no I/O."""

from __future__ import annotations

from styx.serve.planner import Autoscaler, Seen, plan
from styx.spec.service import ReadinessProbe, ServiceSpec

PROBE = ReadinessProbe("/health")


def spec(**kw: object) -> ServiceSpec:
    base: dict[str, object] = {"probe": PROBE, "port": 8080}
    base.update(kw)
    return ServiceSpec(**base)  # type: ignore[arg-type]


def scaling(**kw: object) -> ServiceSpec:
    base: dict[str, object] = {"min_replicas": 1, "max_replicas": 3, "target_qps": 10.0,
                               "upscale_delay_s": 20.0, "downscale_delay_s": 40.0}  # fmt: skip
    return spec(**{**base, **kw})


def test_fixed_count_never_moves() -> None:
    auto = Autoscaler(spec(min_replicas=2, max_replicas=2))
    assert [auto.decide(qps, t) for t, qps in enumerate([0, 1000, 0])] == [2, 2, 2]


def test_upscale_waits_for_the_delay_and_downscale_for_its_own() -> None:
    auto = Autoscaler(scaling())
    assert auto.decide(25, 0) == 1  # wants 3, for 0 s so far
    assert auto.decide(25, 19) == 1
    assert auto.decide(25, 20) == 3  # 20 s in a row
    assert auto.decide(5, 21) == 3  # wants 1 now
    assert auto.decide(5, 60) == 3
    assert auto.decide(5, 61) == 1  # 40 s in a row


def test_a_blip_restarts_the_wait() -> None:
    auto = Autoscaler(scaling())
    auto.decide(25, 0)
    auto.decide(5, 10)  # load fell back: the upscale wait starts over
    assert auto.decide(25, 15) == 1
    assert auto.decide(25, 34) == 1
    assert auto.decide(25, 35) == 3


def test_clamped_to_the_bounds() -> None:
    auto = Autoscaler(scaling(upscale_delay_s=0.0))
    assert auto.decide(10_000, 0) == 3


def test_from_zero_does_not_wait() -> None:
    auto = Autoscaler(spec(min_replicas=0, max_replicas=2, target_qps=5.0, upscale_delay_s=300.0))
    assert auto.decide(0, 0) == 0
    assert auto.decide(0.01, 1) == 1  # a request is waiting


def seen(rid: int, version: int = 1, *, spot: bool = False, ready: bool = True,
         launching: bool = False, draining: bool = False) -> Seen:  # fmt: skip
    return Seen(rid, version, spot, ready, launching, draining)


def test_launches_what_is_missing_and_drains_the_surplus_not_ready_first() -> None:
    s = spec(min_replicas=2, max_replicas=2)
    assert plan(s, 2, 1, [seen(1)], task_spot=False).launch_ondemand == 1
    out = plan(s, 1, 1, [seen(1), seen(2, ready=False), seen(3)], task_spot=False)
    assert out.drain == (2, 3)  # the one not READY, then the newest READY one
    assert plan(s, 2, 1, [seen(1)], task_spot=False, may_launch=False).launch_ondemand == 0


def test_rolling_update_keeps_old_replicas_until_new_ones_are_ready() -> None:
    s = spec(min_replicas=2, max_replicas=2)
    old = [seen(1), seen(2)]
    first = plan(s, 2, 2, old, task_spot=False)
    assert (first.launch_ondemand, first.drain) == (2, ())
    one_new = plan(s, 2, 2, [*old, seen(3, 2), seen(4, 2, ready=False, launching=True)],
                   task_spot=False)  # fmt: skip
    assert one_new.launch_ondemand == 0 and len(one_new.drain) == 1
    both = plan(s, 2, 2, [*old, seen(3, 2), seen(4, 2)], task_spot=False)
    assert sorted(both.drain) == [1, 2]


def test_blue_green_switches_all_at_once() -> None:
    s = spec(min_replicas=2, max_replicas=2)
    old = [seen(1), seen(2)]
    half = plan(s, 2, 2, [*old, seen(3, 2), seen(4, 2, ready=False)], task_spot=False,
                mode="blue_green")  # fmt: skip
    assert half.drain == ()
    full = plan(s, 2, 2, [*old, seen(3, 2), seen(4, 2)], task_spot=False, mode="blue_green")
    assert sorted(full.drain) == [1, 2]


def test_spot_with_base_and_dynamic_on_demand_fallback() -> None:
    s = spec(min_replicas=3, max_replicas=3, base_ondemand=1, dynamic_ondemand=True)
    empty = plan(s, 3, 1, [], task_spot=True)
    assert (empty.launch_spot, empty.launch_ondemand) == (2, 3)  # 1 base + 2 covering spot
    spot_ready = [seen(1, spot=True), seen(2, spot=True)]
    od = [seen(3), seen(4), seen(5)]
    settled = plan(s, 3, 1, spot_ready + od, task_spot=True)
    assert (settled.launch_spot, settled.launch_ondemand) == (0, 0)
    assert len(settled.drain) == 2  # only the base on-demand replica stays
    static = spec(min_replicas=2, max_replicas=2, base_ondemand=1)
    assert plan(static, 2, 1, [], task_spot=True) == plan(static, 2, 1, [], task_spot=True)
    out = plan(static, 2, 1, [], task_spot=True)
    assert (out.launch_spot, out.launch_ondemand) == (1, 1)


def test_the_sdk_exposes_the_serve_calls() -> None:
    import styx
    from styx.serve import api

    assert [getattr(styx.serve, n) for n in ("up", "status", "update", "down", "logs")] == [
        api.up, api.status, api.update, api.down, api.logs,
    ]  # fmt: skip


def test_a_replica_task_opens_the_service_port_and_takes_the_chosen_spot_setting() -> None:
    from styx.serve.replicas import replica_task

    spec = {"run": "x", "resources": {"infra": "aws", "use_spot": True, "ports": [22, "9000-9100"]}}
    task = replica_task(spec, 7, use_spot=False, port=8080)
    assert task.envs["STYX_SERVE_REPLICA_ID"] == "7"
    assert [(p.start, p.end) for p in task.resources.ports] == [
        (22, 22),
        (9000, 9100),
        (8080, 8080),
    ]
    assert task.resources.use_spot is False
    covered = replica_task(spec, 1, use_spot=True, port=9050)
    assert [(p.start, p.end) for p in covered.resources.ports] == [(22, 22), (9000, 9100)]
    assert replica_task({"run": "x"}, 1, use_spot=True, port=80).resources.use_spot is True
