"""``styx serve`` end to end on an SSH node pool: real sshd hosts in network namespaces, real
Ray and agents on them, replicas that are real HTTP servers, and a real HAProxy here.

Through the CLI and the real controller daemon: two replicas READY and balanced round robin;
``kill -9`` of the controller under load (serving goes on, no replica is touched); a rolling
update under load with no failed request; a replica's host killed under load (only in-flight
requests may fail, at most one per connection, and a new replica replaces it); autoscaling
1 -> 3 -> 1 within its delays; a probe that never passes (FAILED with the reason, no traffic);
and ``serve down`` leaving no cluster, process or port.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from tests import leaks
from tests.ops.conftest import wheelhouse
from tests.serve.conftest import APP, Load, get
from tests.testworld.testbed import Testbed, usable

from styx.serve import haproxy

pytestmark = [pytest.mark.ray, pytest.mark.slow]
HOSTS = 5  # 2 replicas, 2 more while a rolling update surges, 1 spare for a replacement
#: The serve daemon's knobs for tests: a round every 0.5 s, a 3 s QPS window, exit 2 s idle.
#: Requests held while no replica is READY wait 3 s (not 600) before a 503.
FAST = {
    "STYX_SERVE_TICK": "0.5", "STYX_SERVE_QPS_WINDOW": "3", "STYX_SERVE_IDLE_EXIT": "2",
    "STYX_SERVE_HOLD_TIMEOUT": "3",
}  # fmt: skip


@pytest.fixture(scope="module")
def bed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Testbed]:
    why = usable()
    if why:
        pytest.skip(why)
    if wheelhouse() is None:
        pytest.skip("no wheelhouse with Ray (scripts/test.sh builds .wheelhouse before the tests)")
    if shutil.which("haproxy") is None:
        pytest.skip("haproxy is not installed (scripts/test.sh installs it)")
    testbed = Testbed(tmp_path_factory.mktemp("serve-bed"), HOSTS).up()
    yield testbed
    testbed.down()


@pytest.fixture
def world(bed: Testbed, tmp_path: Path) -> Iterator[World]:
    home = tmp_path / "home"
    home.mkdir()
    hosts = "\n".join(f"    - {h.ip}" for h in bed.hosts)
    (home / "ssh_node_pools.yaml").write_text(
        f"lab:\n  user: root\n  identity_file: {bed.key}\n  hosts:\n{hosts}\n"
    )
    app_dir = tmp_path / "app"
    app_dir.mkdir()
    shutil.copy(APP, app_dir / "app.py")
    env = {
        **os.environ, **FAST, "STYX_HOME": str(home),
        "STYX_WHEELHOUSE": str(wheelhouse()),
    }  # fmt: skip
    env.pop("STYX_DB_URL", None)
    before = leaks.snapshot()
    w = World(bed, home, app_dir, env)
    try:
        yield w
    finally:
        w.cli("serve", "down", "--all", "-y", check=False)
        w.cli("down", "--all", "-y", check=False)
        w.wait(lambda: not w.daemon_pids(), 30, "the serve daemon to exit")
        leaks.assert_none_since(before, (str(home), "styx.serve.daemon"))
        assert json.loads(w.cli("status", "--json").stdout or "[]") == []
        for i in range(1, HOSTS + 1):
            if not bed.alive(i):
                bed.reboot(i)


class World:
    """One Styx home on the pool, and the CLI run in it."""

    def __init__(self, bed: Testbed, home: Path, app_dir: Path, env: dict[str, str]) -> None:
        self.bed, self.home, self.app_dir, self.env = bed, home, app_dir, env

    def cli(
        self, *args: str, check: bool = True, timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [sys.executable, "-m", "styx.cli.main", *args],
            env=self.env, capture_output=True, text=True, timeout=timeout,
        )  # fmt: skip
        if check:
            assert done.returncode == 0, done.stdout + done.stderr
        return done

    def service_yaml(self, name: str, service: str, *, envs: str = "") -> Path:
        path = self.app_dir / f"{name}.yaml"
        path.write_text(
            f"service:\n{service}\n  ports: 8080\n"
            f"resources:\n  infra: ssh/lab\n"
            f"workdir: {self.app_dir}\n"
            + (f"envs:\n{envs}\n" if envs else "")
            + "run: exec python3 app.py 8080\n"
        )
        return path

    def status(self, name: str) -> dict[str, Any]:
        [view] = json.loads(self.cli("serve", "status", name, "--json").stdout)
        return dict(view)

    def ready(self, name: str) -> list[dict[str, Any]]:
        return [r for r in self.status(name)["replicas"] if r["status"] == "READY"]

    def wait(
        self, pred: Callable[[], object], timeout: float, what: str, every: float = 0.5
    ) -> None:
        deadline = time.monotonic() + timeout
        while not pred():
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            time.sleep(every)

    def daemon_pids(self) -> dict[str, int]:
        out = {}
        for role in ("supervisor", "controller"):
            with contextlib.suppress(OSError, ValueError):
                pid = int((self.home / "serve" / f"{role}.pid").read_text())
                os.kill(pid, 0)
                out[role] = pid
        return out

    def host_index(self, endpoint: str) -> int:
        ip = endpoint.rpartition(":")[0]
        return next(h.index for h in self.bed.hosts if h.ip == ip)


def port_open(host: str, port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), 0.5):
        return True
    return False


def test_two_replicas_kill_9_rolling_update_host_loss_and_down(world: World) -> None:
    probe = "  readiness_probe:\n    path: /health\n    initial_delay_seconds: 120\n    timeout_seconds: 2\n    consecutive_failure_threshold_timeout: 3\n"
    v1 = world.service_yaml("v1", probe + "  replicas: 2")
    up = world.cli("serve", "up", str(v1), "-n", "web", "-y")
    assert "http://127.0.0.1:" in up.stdout
    endpoint = world.cli("serve", "status", "web", "--endpoint").stdout.strip()
    host, port = "127.0.0.1", int(endpoint.rpartition(":")[2])
    world.wait(lambda: len(world.ready("web")) == 2, 240, "two READY replicas")
    view = world.status("web")
    assert view["status"] == "READY"
    assert {r["infra"] for r in view["replicas"]} == {"ssh/lab"}
    assert {r["endpoint"].rpartition(":")[0] for r in view["replicas"]} <= {
        h.ip for h in world.bed.hosts
    }
    table = world.cli("serve", "status").stdout
    assert "web" in table and endpoint in table and "READY" in table
    first = view["replicas"][0]["replica_id"]
    out = world.cli("serve", "logs", "web", str(first), "--no-follow").stdout
    assert f"replica {first} v1 serving on port 8080" in out

    # Round robin: both replicas answer, in turn.
    answers = [get(host, port, "/whoami")[1].split()[1] for _ in range(20)]
    ids = sorted({str(r["replica_id"]) for r in view["replicas"]})
    assert sorted(set(answers)) == ids
    assert abs(answers.count(ids[0]) - answers.count(ids[1])) <= 1

    # kill -9 of the controller under load: serving goes on, and it resumes.
    before = world.daemon_pids()["controller"]
    with Load(host, port, connections=8) as load:
        time.sleep(1)
        os.kill(before, signal.SIGKILL)
        world.wait(
            lambda: world.daemon_pids().get("controller") not in (None, before),
            30,
            "a new controller",
        )
        time.sleep(4)  # several rounds of the new controller
    assert load.failures == [] and load.total > 50
    after = world.status("web")["replicas"]
    assert [(r["replica_id"], r["status"], r["ready_at"]) for r in after] == [
        (r["replica_id"], "READY", r["ready_at"]) for r in view["replicas"]
    ]  # not relaunched, not even re-probed into another state

    # A rolling update under steady load: no request fails; old replicas drain, then go.
    v2 = world.service_yaml("v2", probe + "  replicas: 2", envs="  SERVE_APP_VERSION: '2'")
    with Load(host, port, connections=8) as load:
        world.cli("serve", "update", "web", str(v2), "-y")
        world.wait(
            lambda: {r["version"] for r in world.status("web")["replicas"]} == {2}
            and len(world.ready("web")) == 2,
            300, "version 2 to replace version 1",
        )  # fmt: skip
        time.sleep(1)
    assert load.failures == []
    assert any("v1" in k for k in load.ok) and any("v2" in k for k in load.ok)
    assert world.status("web")["version"] == 2

    # A replica's host dies under load: at most one in-flight request per connection fails,
    # and a new replica takes its place.
    current = world.ready("web")
    victim = current[0]
    with Load(host, port, connections=8) as load:
        time.sleep(1)
        world.bed.crash(world.host_index(victim["endpoint"]))
        world.wait(
            lambda: len(world.ready("web")) == 2
            and victim["replica_id"] not in {r["replica_id"] for r in world.ready("web")},
            300, "a replacement replica",
        )  # fmt: skip
    per_connection = [i for i, _ in load.failures]
    assert all(per_connection.count(i) <= 1 for i in set(per_connection)), load.failures
    assert len(load.failures) <= 8
    assert all(get(host, port, "/whoami")[0] == 200 for _ in range(10))
    log = world.cli("serve", "logs", "web", "--controller", "--no-follow").stdout
    assert (
        f"replica {victim['replica_id']} PREEMPTED" in log
        or f"replica {victim['replica_id']} FAILED" in log
    )

    # Down: no cluster, no process, no port.
    world.cli("serve", "down", "web", "-y")
    assert world.cli("serve", "status").stdout.strip() == "No existing services."
    assert json.loads(world.cli("status", "--json").stdout or "[]") == []
    assert not port_open(host, port)


def test_autoscaling_and_a_probe_that_never_passes(world: World) -> None:
    scaling = (
        "  readiness_probe:\n    path: /health\n    initial_delay_seconds: 120\n    timeout_seconds: 2\n"
        "  replica_policy:\n    min_replicas: 1\n    max_replicas: 3\n    target_qps_per_replica: 5\n"
        "    upscale_delay_seconds: 4\n    downscale_delay_seconds: 8"
    )
    world.cli("serve", "up", str(world.service_yaml("auto", scaling)), "-n", "auto", "-y")
    sick = "  readiness_probe:\n    path: /health\n    initial_delay_seconds: 8\n    timeout_seconds: 2\n  replicas: 1"
    world.cli(
        "serve",
        "up",
        str(world.service_yaml("sick", sick, envs="  SERVE_NEVER_READY: '1'")),
        "-n",
        "sick",
        "-y",
    )
    auto_port = int(
        world.cli("serve", "status", "auto", "--endpoint").stdout.strip().rpartition(":")[2]
    )
    world.wait(lambda: len(world.ready("auto")) == 1, 240, "the first replica")

    # A load step well over 5 QPS per replica: 3 replicas, not before the upscale delay.
    with Load("127.0.0.1", auto_port, connections=4, path="/delay?ms=20") as load:
        stepped = time.time()
        world.wait(lambda: len(world.ready("auto")) == 3, 240, "three READY replicas")
    replicas = world.status("auto")["replicas"]
    later = [r for r in replicas if r["launched_at"] > stepped]
    assert len(later) == 2
    assert min(r["launched_at"] for r in later) - stepped >= 4 - 0.5  # the upscale delay held
    assert load.failures == []
    # The load stops: back to 1, not before the downscale delay.
    stopped = time.time()
    world.wait(
        lambda: len([r for r in world.status("auto")["replicas"] if r["status"] == "READY"]) == 1,
        120,
        "one replica again",
    )
    assert time.time() - stopped >= 8 - 0.5
    world.wait(lambda: len(world.status("auto")["replicas"]) == 1, 60, "the drained replicas to go")

    # The probe that never passes: FAILED with the reason, and no request ever reached it.
    sick_port = int(
        world.cli("serve", "status", "sick", "--endpoint").stdout.strip().rpartition(":")[2]
    )

    def failed() -> list[dict[str, Any]]:
        return [r for r in world.status("sick")["replicas"] if r["status"] == "FAILED"]

    world.wait(lambda: failed(), 240, "the sick replica to fail")
    reason = failed()[0]["reason"]
    assert "readiness probe did not pass within 8 s" in reason and "HTTP 503" in reason
    # No traffic reached it: a request is held (no replica is READY), then refused, and no
    # server slot of the load balancer ever carried a request.
    status, body = get("127.0.0.1", sick_port, "/whoami", timeout=30)
    assert status == 503 and "No replica" in body
    lb = haproxy.LbSettings(world.home / "serve" / "services" / "sick", "127.0.0.1", sick_port)
    stats = asyncio.run(haproxy.stats(lb))
    assert stats.requests >= 1 and all(slot.total == 0 for slot in stats.slots.values())
    world.cli("serve", "down", "--all", "-y")
    assert not port_open("127.0.0.1", sick_port) and not port_open("127.0.0.1", auto_port)
