"""``styx serve`` on this machine: bad input (codes, no traceback, nothing recorded), a plain
``styx launch`` of a service file, and scale to zero on the local infra, where the first
request waits for a replica instead of failing."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests import leaks
from tests.serve.conftest import APP, free_port, get

from styx.errors import StyxError
from styx.spec.service import ServiceSpec

REPO = Path(__file__).resolve().parents[2]
needs_haproxy = pytest.mark.skipif(
    shutil.which("haproxy") is None, reason="haproxy is not installed"
)


def styx(
    *args: str, home: Path, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    full = {
        **os.environ,
        "STYX_HOME": str(home),
        "STYX_SERVE_TICK": "0.5",
        "STYX_SERVE_IDLE_EXIT": "2",
        **(env or {}),
    }
    full.pop("STYX_DB_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "styx.cli.main", *args],
        env=full, cwd=REPO, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


def coded(r: subprocess.CompletedProcess[str], exit_code: int, code: str) -> None:
    assert r.returncode == exit_code, r.stdout + r.stderr
    assert f"[{code}]" in r.stderr or code in r.stderr, r.stderr
    assert "Traceback" not in r.stderr
    assert "Hint:" in r.stderr


def service_file(tmp_path: Path, service: str, name: str = "svc.yaml", port: int = 18555) -> Path:
    app = tmp_path / "app"
    app.mkdir(exist_ok=True)
    shutil.copy(APP, app / "app.py")
    path = tmp_path / name
    path.write_text(
        f"service:\n{service}\n  ports: {port}\nresources:\n  infra: local\n"
        f"workdir: {app}\nrun: exec python3 app.py {port}\n"
    )
    return path


@needs_haproxy
def test_bad_input_gets_codes_and_records_nothing(tmp_path: Path) -> None:
    home = tmp_path / "home"
    plain = tmp_path / "plain.yaml"
    plain.write_text("run: echo hi\n")
    coded(styx("serve", "up", str(plain), "-y", home=home), 2, "no-service-section")
    good = service_file(tmp_path, "  readiness_probe: /health")
    coded(
        styx("serve", "up", str(good), "-n", "Bad_Name", "-y", home=home), 2, "invalid-service-name"
    )
    no_port = tmp_path / "noport.yaml"
    no_port.write_text("service: {readiness_probe: /health}\nrun: x\n")
    coded(styx("serve", "up", str(no_port), "-y", home=home), 2, "service-port-missing")
    coded(styx("serve", "status", "nope", home=home), 3, "service-not-found")
    coded(styx("serve", "down", "nope", "-y", home=home), 3, "service-not-found")
    coded(styx("serve", "update", "nope", str(good), "-y", home=home), 3, "service-not-found")
    coded(
        styx("serve", "logs", "nope", "--controller", "--no-follow", home=home),
        3,
        "service-not-found",
    )
    coded(styx("serve", "logs", "nope", home=home), 2, "invalid-usage")
    coded(styx("serve", "down", "-y", home=home), 2, "invalid-usage")
    coded(
        styx(
            "serve", "up", str(good), "-y", home=home, env={"STYX_HAPROXY": "/nonexistent/haproxy"}
        ),
        4,
        "load-balancer-missing",
    )
    tls = service_file(
        tmp_path,
        "  readiness_probe: /health\n  tls: {keyfile: /nonexistent.key, certfile: /nonexistent.crt}",
        "tls.yaml",
    )
    coded(styx("serve", "up", str(tls), "-n", "tls", "-y", home=home), 4, "tls-file-unreadable")
    r = styx("serve", "status", home=home)
    assert r.returncode == 0 and "No existing services." in r.stdout  # nothing half-recorded
    assert not (home / "serve" / "services" / "tls").exists()


@needs_haproxy
def test_a_name_in_use_is_refused(tmp_path: Path) -> None:
    home = tmp_path / "home"
    before = leaks.snapshot()
    good = service_file(tmp_path, "  readiness_probe: /health\n  replicas: 1", port=free_port())
    try:
        assert styx("serve", "up", str(good), "-n", "one", "-y", home=home).returncode == 0
        coded(styx("serve", "up", str(good), "-n", "one", "-y", home=home), 5, "service-exists")
    finally:
        assert styx("serve", "down", "--all", "-y", home=home).returncode == 0
    leaks.assert_none_since(before, (str(home), "styx.serve.daemon"))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.dictionaries(
        st.sampled_from(
            [
                "readiness_probe",
                "replicas",
                "replica_policy",
                "ports",
                "load_balancing_policy",
                "tls",
                "load_balancer",
                "bogus",
            ]
        ),
        st.one_of(
            st.none(),
            st.booleans(),
            st.integers(-5, 70000),
            st.floats(allow_nan=True),
            st.text(max_size=8),
            st.dictionaries(
                st.sampled_from(
                    [
                        "path",
                        "min_replicas",
                        "max_replicas",
                        "target_qps_per_replica",
                        "initial_delay_seconds",
                        "keyfile",
                        "certfile",
                        "upscale_delay_seconds",
                        "x",
                    ]
                ),
                st.one_of(st.integers(-3, 10), st.text(max_size=6), st.floats(-1, 10), st.none()),
                max_size=4,
            ),
        ),
        max_size=5,
    ),
    st.lists(st.integers(1, 65535), max_size=2),
)
def test_any_service_section_parses_or_gets_a_coded_error(
    section: dict[str, object], ports: list[int]
) -> None:
    from styx.spec.task import Task

    data: dict[str, object] = {"service": section, "run": "x"}
    if ports:
        data["resources"] = {"ports": ports}
    try:
        task = Task.from_dict(data)
        assert task.service is not None
        spec = ServiceSpec.of(task.service, tuple(p.start for p in task.resources.ports))
    except StyxError as e:
        assert e.code and e.message and e.hint
        return
    assert 1 <= spec.port <= 65535 and 0 <= spec.min_replicas <= spec.max_replicas
    assert spec.max_replicas >= 1


@needs_haproxy
def test_plain_launch_of_a_service_file_runs_it_and_points_at_serve_up(tmp_path: Path) -> None:
    home = tmp_path / "home"
    path = tmp_path / "svc.yaml"
    path.write_text(
        "service: {readiness_probe: /health, replicas: 2, ports: 8080}\nresources: {infra: local}\nrun: echo plain-run\n"
    )
    r = styx("launch", str(path), "-c", "plain", "-y", home=home)
    try:
        assert r.returncode == 0, r.stderr
        assert "styx serve up" in r.stdout + r.stderr
        assert "plain-run" in r.stdout
    finally:
        styx("down", "plain", "-y", home=home)


@needs_haproxy
def test_scale_to_zero_then_the_first_request_waits_for_a_replica(tmp_path: Path) -> None:
    home = tmp_path / "home"
    before = leaks.snapshot()
    service = (
        "  readiness_probe: {path: /health, initial_delay_seconds: 60, timeout_seconds: 2}\n"
        "  replica_policy: {min_replicas: 0, max_replicas: 1, target_qps_per_replica: 100,"
        " upscale_delay_seconds: 300, downscale_delay_seconds: 3}"
    )
    path = service_file(tmp_path, service, port=free_port())
    env = {"STYX_SERVE_QPS_WINDOW": "2"}
    try:
        assert (
            styx("serve", "up", str(path), "-n", "zero", "-y", home=home, env=env).returncode == 0
        )
        port = int(
            styx("serve", "status", "zero", "--endpoint", home=home)
            .stdout.strip()
            .rpartition(":")[2]
        )

        def view() -> dict[str, object]:
            return dict(json.loads(styx("serve", "status", "zero", "--json", home=home).stdout)[0])

        deadline = time.monotonic() + 30
        while view()["status"] != "NO_REPLICA":
            assert time.monotonic() < deadline
            time.sleep(0.5)
        assert view()["replicas"] == []  # scaled to zero: nothing runs
        started = time.monotonic()
        status, body = get("127.0.0.1", port, "/whoami", timeout=120)  # held, not refused
        assert (status, body) == (200, "replica 1 v1\n")
        assert time.monotonic() - started > 1  # it waited for a launch (no upscale delay from 0)
        deadline = time.monotonic() + 60
        while view()["replicas"]:  # idle again: drained and torn down after 3 s
            assert time.monotonic() < deadline, view()
            time.sleep(0.5)
        assert view()["status"] == "NO_REPLICA"
    finally:
        assert styx("serve", "down", "--all", "-y", home=home).returncode == 0
    leaks.assert_none_since(before, (str(home), "styx.serve.daemon"))
    assert json.loads(styx("status", "--json", home=home).stdout or "[]") == []
