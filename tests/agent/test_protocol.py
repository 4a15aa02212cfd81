"""The wire protocol and agent.json: round trips, strictness, the transition table."""

from __future__ import annotations

import json

import pytest

from styx.agent.client import error_from
from styx.agent.protocol import (
    PROTOCOL_VERSION,
    TERMINAL_STATUSES,
    TRANSITIONS,
    AgentConfig,
    AutostopConfig,
    Demand,
    JobRecord,
    JobSpec,
    JobStatus,
    NodeInfo,
    encode,
    error_reply,
    parse_request,
    request,
)
from styx.errors import AgentError, JobNotFound


def test_job_spec_round_trip_and_defaults() -> None:
    spec = JobSpec(
        name="train",
        setup="pip install x",
        run="python t.py",
        envs={"A": "1", "KEY": "v"},
        secret_env_names=["KEY"],
        num_nodes=2,
        gpus=0.5,
        accelerator="A100",
        memory_gb=4,
        cwd="~/w",
        priority=3,
        user="u",
        task_id="t1",
    )
    assert JobSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    assert spec.public_envs() == {"A": "1"} and spec.secret_envs() == {"KEY": "v"}
    assert spec.demand == Demand(cpus=0.5, gpus=0.5, accelerator="A100", memory_gb=4)
    assert JobSpec().demand.cpus == 0.5  # SkyPilot's DEFAULT_TASK_CPU_DEMAND
    assert JobSpec(cpus=4).demand.cpus == 4


def test_job_record_round_trip() -> None:
    rec = JobRecord(
        job_id=3,
        name=None,
        status=JobStatus.FAILED,
        submitted_at=1.0,
        started_at=2.0,
        ended_at=3.0,
        exit_code=2,
        num_nodes=2,
        demand=Demand(cpus=1, gpus=1),
        user="u",
        log_dir="/x/3",
        failure_reason="boom",
        priority=1,
        task_id="t",
        nodes=["a", "b"],
    )
    assert JobRecord.from_dict(json.loads(json.dumps(rec.to_dict()))) == rec


def test_agent_config_round_trip(tmp_path) -> None:
    cfg = AgentConfig(
        cluster_name="c",
        styx_version="0.1",
        ray_address="198.18.5.1:46380",
        nodes=[
            NodeInfo("198.18.5.1", "head", 8, 32, 1, "A100"),
            NodeInfo("198.18.5.2", "w1", 8, 32),
        ],
        autostop=AutostopConfig(idle_minutes=10, down=True),
        stop_command=["stop"],
        down_command=["down", "--yes"],
        env={"X": "y"},
        cloud="aws",
        region="us-east-1",
    )
    assert AgentConfig.from_json(cfg.to_json()) == cfg
    cfg.write(tmp_path)
    assert AgentConfig.load(tmp_path) == cfg
    assert cfg.head.name == "head"


@pytest.mark.parametrize(
    "bad",
    [
        {"run": "x", "typo_field": 1},
        {"run": 3},
        {"num_nodes": "2"},
        {"num_nodes": 0},
        {"envs": {"A": 1}},
        {"cpus": True},
    ],
)
def test_bad_specs_are_typed_errors(bad: dict) -> None:
    with pytest.raises(AgentError) as e:
        JobSpec.from_dict(bad)
    assert e.value.code == "invalid-request"


def test_bad_config_is_typed_error() -> None:
    with pytest.raises(AgentError):
        AgentConfig.from_json('{"cluster_name": "c"}')
    with pytest.raises(AgentError):
        AgentConfig.from_json("not json")


def test_transition_table() -> None:
    for status in JobStatus:
        if status in TERMINAL_STATUSES:
            assert not TRANSITIONS.moves.get(status), f"{status} must never change"
            assert status.is_terminal
        else:
            assert status.can_become(JobStatus.CANCELLED)
            assert status.can_become(JobStatus.FAILED_DRIVER)
    assert JobStatus.PENDING.can_become(JobStatus.RUNNING)  # no setup: straight to RUNNING
    assert JobStatus.SETTING_UP.can_become(JobStatus.FAILED_SETUP)
    assert not JobStatus.RUNNING.can_become(JobStatus.FAILED_SETUP)
    assert not JobStatus.RUNNING.can_become(JobStatus.PENDING)


def test_request_parsing_and_version_mismatch() -> None:
    assert parse_request(encode(request("queue", {"all": True}))) == ("queue", {"all": True})
    with pytest.raises(AgentError) as e:
        parse_request(json.dumps({"v": PROTOCOL_VERSION + 1, "op": "ping"}).encode())
    assert e.value.code == "agent-protocol-mismatch"
    with pytest.raises(AgentError) as e:
        parse_request(json.dumps({"op": "ping"}).encode())
    assert e.value.code == "agent-protocol-mismatch"
    for bad in (b"{not json", b"[1]", json.dumps({"v": PROTOCOL_VERSION, "op": "rm"}).encode()):
        with pytest.raises(AgentError) as e:
            parse_request(bad)
        assert e.value.code == "invalid-request"


def test_error_replies_become_typed_exceptions() -> None:
    err = error_from(error_reply("job-not-found", "Job 9 does not exist.", "List jobs."))
    assert isinstance(err, JobNotFound) and err.hint == "List jobs."
    err = error_from(error_reply("agent-protocol-mismatch", "old", "upgrade"))
    assert isinstance(err, AgentError) and err.code == "agent-protocol-mismatch"
    assert err.to_dict() == {"code": "agent-protocol-mismatch", "message": "old", "hint": "upgrade"}


def test_one_job_status_for_the_agent_and_the_state_layer() -> None:
    # The agent's protocol and the client's records share one enum, at the bottom of the house,
    # and the wire values are the ones protocol 2 sent; protocol 3 changed only log chunks (bytes).
    from styx import lifecycle
    from styx.state.records import ClusterJobStatus

    assert JobStatus is ClusterJobStatus is lifecycle.JobStatus
    assert [s.value for s in JobStatus] == [
        "INIT", "PENDING", "SETTING_UP", "RUNNING", "SUCCEEDED", "FAILED", "FAILED_SETUP",
        "FAILED_DRIVER", "CANCELLED",
    ]  # fmt: skip
    assert PROTOCOL_VERSION == 3


@pytest.mark.parametrize(
    "bad, path, reason",
    [
        ({"run": "x", "num_nodse": 2}, "job_spec.num_nodse", "unknown-key"),
        ({"num_nodes": "2"}, "job_spec.num_nodes", "invalid-type"),
        ({"envs": {"A": 1}}, "job_spec.envs", "invalid-type"),
    ],
)
def test_protocol_errors_come_from_the_one_validation_framework(
    bad: dict, path: str, reason: str
) -> None:
    # The spec layer's Value reads the protocol's fields; its errors are the protocol's.
    with pytest.raises(AgentError) as e:
        JobSpec.from_dict(bad)
    err = e.value
    assert err.code == "invalid-request" and "one protocol" in err.hint
    assert err.details == {"reason": reason, "path": path}
    assert path in err.message or path.rsplit(".", 1)[1] in err.message


def test_the_protocol_needs_no_pyyaml() -> None:
    # An agent node may have only Ray and psutil: the validation framework must not need YAML.
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['yaml'] = None\n"
        "from styx.agent.protocol import JobSpec\n"
        "assert JobSpec.from_dict({'run': 'x'}).run == 'x'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, env={"PYTHONPATH": ":".join(sys.path)})


def test_log_chunks_carry_any_bytes() -> None:
    from styx.agent.protocol import chunk_bytes, chunk_reply, is_chunk

    data = bytes(range(256)) * 3
    reply = json.loads(encode(chunk_reply(data)))
    assert is_chunk(reply) and chunk_bytes(reply) == data
    assert not is_chunk({"v": 3, "ok": True, "result": {"data": "x"}})
    with pytest.raises(AgentError) as info:
        chunk_bytes({"v": 3, "data": "not base64!"})
    assert info.value.code == "invalid-reply"
