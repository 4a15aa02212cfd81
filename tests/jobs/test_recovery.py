"""The recovery policy read from a stored task spec, and the decisions made from it."""

from __future__ import annotations

import pytest

from styx.errors import SpecError
from styx.jobs.recovery import Recovery
from styx.spec.dag import Dag
from styx.spec.policies import RecoveryStrategy


def _spec(recovery: str) -> dict[str, object]:
    yaml = f"name: t\nrun: echo hi\nresources: {{job_recovery: {recovery}}}\n"
    return Dag.from_yaml_str(yaml).tasks[0].to_dict()


def test_strategy_is_an_enum_parsed_once() -> None:
    assert Recovery.from_spec({"run": "x"}) == Recovery()
    assert Recovery().strategy is RecoveryStrategy.FAILOVER
    eager = Recovery.from_spec(_spec("eager_next_region"))
    assert eager.strategy is RecoveryStrategy.EAGER_NEXT_REGION
    full = Recovery.from_spec(
        _spec("{strategy: NONE, max_restarts_on_errors: 2, recover_on_exit_codes: [3, 4]}")
    )
    assert full == Recovery(RecoveryStrategy.NONE, 2, frozenset({3, 4}))


def test_an_unknown_strategy_is_a_spec_error_naming_the_field() -> None:
    with pytest.raises(SpecError) as caught:
        Recovery.from_spec({"resources": {"job_recovery": "EAGER_NEXT_REGOIN"}})
    err = caught.value
    assert err.code == "invalid-value"
    assert err.location is not None and err.location.path == "resources.job_recovery"
    assert "EAGER_NEXT_REGION" in err.hint  # did you mean
    with pytest.raises(SpecError):
        Recovery.from_spec({"resources": {"job_recovery": {"strategy": "SOMETIMES"}}})


def test_the_task_yaml_refuses_an_unknown_strategy_too() -> None:
    with pytest.raises(SpecError) as caught:
        _spec("RETRY_FOREVER")
    assert caught.value.code == "invalid-value"
