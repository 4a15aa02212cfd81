"""The recovery policy read from a stored task spec, and the decisions made from it."""

from __future__ import annotations

import pytest

from styx.errors import SpecError
from styx.jobs.recovery import Decision, Recovery, after_launch, after_run
from styx.spec.dag import Dag
from styx.spec.policies import RecoveryStrategy
from styx.state.records import ClusterJobStatus, Retry, TerminationReason
from styx.state.records import ManagedJobStatus as S


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


# -- termination reasons and the decisions made from them --------------------------------------

R = TerminationReason


def test_every_reason_maps_to_a_final_status_and_a_retry_decision() -> None:
    expected = {
        R.SUCCEEDED: (S.SUCCEEDED, Retry.NO),
        R.USER_CODE_FAILED: (S.FAILED, Retry.RESTART),
        R.SETUP_FAILED: (S.FAILED_SETUP, Retry.NO),
        R.PREEMPTED: (S.FAILED, Retry.RECOVER),
        R.NO_RESOURCES: (S.FAILED_NO_RESOURCE, Retry.RELAUNCH),
        R.INFRA_ERROR: (S.FAILED_NO_RESOURCE, Retry.RELAUNCH),
        R.CANCELLED: (S.CANCELLED, Retry.NO),
        R.DEPENDENCY_ENDED: (S.CANCELLED, Retry.NO),
        R.MAX_RESTARTS_REACHED: (S.FAILED, Retry.NO),
        R.RECOVERY_DISABLED: (S.FAILED, Retry.NO),
        R.INVALID_SPEC: (S.FAILED, Retry.NO),
        R.CONTROLLER_ERROR: (S.FAILED_CONTROLLER, Retry.NO),
    }
    assert set(expected) == set(R)
    for reason, (status, retry) in expected.items():
        assert (reason.status, reason.retry) == (status, retry), reason
        assert reason.status.is_terminal and reason.retryable == (retry is not Retry.NO)


def test_cluster_job_endings_map_to_reasons() -> None:
    J = ClusterJobStatus
    assert R.of_cluster_job(J.SUCCEEDED) is R.SUCCEEDED
    assert R.of_cluster_job(J.FAILED) is R.USER_CODE_FAILED
    assert R.of_cluster_job(J.FAILED_SETUP) is R.SETUP_FAILED
    assert R.of_cluster_job(J.FAILED_DRIVER) is R.PREEMPTED  # the node died, not the code
    assert R.of_cluster_job(J.CANCELLED) is R.CANCELLED
    assert all(R.of_cluster_job(s) is None for s in J if not s.is_terminal)


def test_after_run_decisions() -> None:
    default, none = Recovery(), Recovery(RecoveryStrategy.NONE)
    budget = Recovery(max_restarts_on_errors=2, recover_on_exit_codes=frozenset({29}))
    assert after_run(R.SUCCEEDED, default, exit_code=0, restarts=0) == Decision(False, R.SUCCEEDED)
    assert after_run(R.PREEMPTED, default, exit_code=None, restarts=0) == Decision(
        True, R.PREEMPTED
    )
    assert after_run(R.PREEMPTED, none, exit_code=None, restarts=0).reason is R.RECOVERY_DISABLED
    # User errors: no restarts by default; then the budget; recover_on_exit_codes costs none.
    assert after_run(R.USER_CODE_FAILED, default, exit_code=1, restarts=0) == Decision(
        False, R.USER_CODE_FAILED
    )
    again = after_run(R.USER_CODE_FAILED, budget, exit_code=1, restarts=1)
    assert again == Decision(True, R.USER_CODE_FAILED, keep_cluster=True, spend_restart=True)
    spent = after_run(R.USER_CODE_FAILED, budget, exit_code=1, restarts=2)
    assert spent == Decision(False, R.MAX_RESTARTS_REACHED)
    free = after_run(R.USER_CODE_FAILED, budget, exit_code=29, restarts=2)
    assert free == Decision(True, R.USER_CODE_FAILED)  # new machines, no restart spent
    assert not after_run(R.SETUP_FAILED, budget, exit_code=1, restarts=0).retry


def test_after_launch_decisions() -> None:
    def retry(reason: TerminationReason, recovering: bool, failures: int = 0) -> bool:
        return after_launch(reason, recovering=recovering, failures=failures, retries=3).retry

    assert not retry(R.NO_RESOURCES, recovering=False)  # a first launch gives up
    assert retry(R.NO_RESOURCES, recovering=True)  # a recovery waits for capacity
    assert retry(R.INFRA_ERROR, recovering=False, failures=2)
    assert not retry(R.INFRA_ERROR, recovering=False, failures=3)
    assert not retry(R.SETUP_FAILED, recovering=True)
