"""Bootstrap argv: Styx-owned ports, no shell strings, scoped stop."""

from __future__ import annotations

from styx.agent.bootstrap import (
    DEFAULT_RAY_BASE_PORT,
    RayPorts,
    agent_call_argv,
    agent_ensure_argv,
    agent_stop_argv,
    default_temp_dir,
    ray_head_argv,
    ray_stop_argv,
    ray_worker_argv,
)


def _flag(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def test_head_uses_styx_ports_and_no_dashboard() -> None:
    ports = RayPorts.from_base()
    argv = ray_head_argv(
        "198.18.5.5",
        num_cpus=8,
        num_gpus=1,
        memory_bytes=2**33,
        object_store_bytes=2**30,
        temp_dir="/tmp/styx-ray-x",
    )
    assert argv[:3] == ["ray", "start", "--head"]
    assert _flag(argv, "--port") == str(DEFAULT_RAY_BASE_PORT) != "6379"
    assert _flag(argv, "--dashboard-port") == str(ports.dashboard) != "8265"
    assert _flag(argv, "--ray-client-server-port") != "10001"
    assert "--include-dashboard=false" in argv and "--disable-usage-stats" in argv
    assert _flag(argv, "--memory") == str(2**33)
    assert _flag(argv, "--temp-dir") == "/tmp/styx-ray-x"
    assert _flag(argv, "--num-gpus") == "1"
    used = [int(argv[i + 1]) for i, a in enumerate(argv) if a.endswith("-port")]
    assert len(used) >= 10
    assert all(DEFAULT_RAY_BASE_PORT <= p < DEFAULT_RAY_BASE_PORT + RayPorts.span() for p in used)


def test_worker_and_agent_argv() -> None:
    argv = ray_worker_argv(
        "198.18.5.5:46380", "198.18.5.6", num_cpus=4, ports=RayPorts.from_base(50000)
    )
    assert _flag(argv, "--address") == "198.18.5.5:46380"
    assert _flag(argv, "--node-manager-port") == "50001"
    assert "--head" not in argv
    assert agent_ensure_argv("/r", "/venv/bin/python")[:5] == [
        "/venv/bin/python",
        "-m",
        "styx.agent",
        "ensure",
        "--root",
    ]
    assert agent_call_argv("/r", "py") == ["py", "-m", "styx.agent", "call", "--root", "/r"]
    assert agent_stop_argv("/r", "py", ray_temp_dir="/t", ray_port=1)[-4:] == [
        "--ray-temp-dir",
        "/t",
        "--ray-port",
        "1",
    ]
    assert ray_stop_argv("/t", 5, "py") == [
        "py",
        "-m",
        "styx.agent",
        "stop-ray",
        "--temp-dir",
        "/t",
        "--port",
        "5",
    ]


def test_temp_dir_is_short_and_per_cluster() -> None:
    a = default_temp_dir("/home/u/.styx/clusters/a/agent")
    assert a != default_temp_dir("/home/u/.styx/clusters/b/agent")
    assert len(a) < 40  # Ray's socket paths live under it
