"""The load balancer on its own: a real HAProxy driven through its runtime API, in front of
real replica apps on loopback, and the cold-start holder. No cluster is made here."""

from __future__ import annotations

import asyncio
import http.client
import threading
import time
from pathlib import Path

import pytest
from tests.serve.conftest import App, Load, free_port, get

from styx.serve import haproxy
from styx.serve.holder import Holder

pytestmark = pytest.mark.skipif(
    not haproxy.shutil.which("haproxy"), reason="haproxy is not installed"
)


@pytest.fixture
def lb(tmp_path: Path):  # type: ignore[no-untyped-def]
    settings = haproxy.LbSettings(tmp_path / "lb", "127.0.0.1", free_port())
    haproxy.check_config(settings)
    haproxy.start(settings)
    yield settings
    haproxy.stop(settings)
    assert haproxy.running_pid(settings) is None


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def test_round_robin_over_ready_slots_only(lb: haproxy.LbSettings, apps: list[App]) -> None:
    apps += [App("1"), App("2"), App("3")]
    run(haproxy.point(lb, "r1", "127.0.0.1", apps[0].port))
    run(haproxy.point(lb, "r2", "127.0.0.1", apps[1].port))  # app 3 has no slot: not READY
    seen = [get("127.0.0.1", lb.port, "/whoami")[1].split()[1] for _ in range(20)]
    assert sorted(set(seen)) == ["1", "2"]
    assert abs(seen.count("1") - seen.count("2")) <= 1
    stats = run(haproxy.stats(lb))
    assert stats.requests == 20
    assert stats.slots["r1"].total + stats.slots["r2"].total == 20
    assert stats.slots["r3"].status.startswith("MAINT")


def test_a_response_streams_through(lb: haproxy.LbSettings, apps: list[App]) -> None:
    apps.append(App("1"))
    run(haproxy.point(lb, "r1", "127.0.0.1", apps[0].port))
    conn = http.client.HTTPConnection("127.0.0.1", lb.port, timeout=10)
    started = time.monotonic()
    conn.request("GET", "/stream?n=5&ms=300")
    resp = conn.getresponse()
    first = resp.readline()
    first_at = time.monotonic() - started
    rest = resp.read()
    total = time.monotonic() - started
    assert first.startswith(b"token 0")
    assert rest.count(b"token") == 4
    assert first_at < 0.5 < 1.0 < total  # the first token came long before the last


def test_a_get_is_retried_on_another_replica_when_one_dies(
    lb: haproxy.LbSettings, apps: list[App]
) -> None:
    apps += [App("1"), App("2")]
    run(haproxy.point(lb, "r1", "127.0.0.1", apps[0].port))
    run(haproxy.point(lb, "r2", "127.0.0.1", apps[1].port))
    apps[0].stop()  # connections to it are refused now
    answers = [get("127.0.0.1", lb.port, "/whoami") for _ in range(10)]
    assert all(status == 200 and "replica 2" in body for status, body in answers)


def test_drain_lets_in_flight_requests_finish(lb: haproxy.LbSettings, apps: list[App]) -> None:
    apps += [App("1"), App("2")]
    run(haproxy.point(lb, "r1", "127.0.0.1", apps[0].port))
    result: list[tuple[int, str]] = []
    slow = threading.Thread(
        target=lambda: result.append(get("127.0.0.1", lb.port, "/delay?ms=1500"))
    )
    slow.start()
    time.sleep(0.3)
    run(haproxy.point(lb, "r2", "127.0.0.1", apps[1].port))
    run(haproxy.drain(lb, "r1"))
    assert run(haproxy.stats(lb)).slots["r1"].current == 1  # still in flight
    assert all("replica 2" in get("127.0.0.1", lb.port, "/whoami")[1] for _ in range(5))
    slow.join(10)
    assert result == [(200, "replica 1 v1\n")]
    assert run(haproxy.stats(lb)).slots["r1"].current == 0


def test_steady_load_sees_no_failure_across_a_switch(
    lb: haproxy.LbSettings, apps: list[App]
) -> None:
    apps += [App("1"), App("2")]
    run(haproxy.point(lb, "r1", "127.0.0.1", apps[0].port))
    with Load("127.0.0.1", lb.port, connections=8) as load:
        time.sleep(0.5)
        run(haproxy.point(lb, "r2", "127.0.0.1", apps[1].port))
        run(haproxy.drain(lb, "r1"))
        deadline = time.monotonic() + 5
        while run(haproxy.stats(lb)).slots["r1"].current and time.monotonic() < deadline:
            time.sleep(0.05)
        run(haproxy.retire(lb, "r1"))
        apps[0].stop()
        time.sleep(0.5)
    assert load.failures == []
    assert load.ok["replica 1 v1"] and load.ok["replica 2 v1"]


def test_the_holder_keeps_a_request_until_a_replica_is_ready(
    lb: haproxy.LbSettings, apps: list[App]
) -> None:
    apps.append(App("1"))
    endpoint: list[str] = []
    answers: list[tuple[int, str]] = []

    async def scenario() -> None:
        holder = Holder(lb.holder, lambda: endpoint[0] if endpoint else None, timeout_s=10)
        await holder.start()
        try:
            client = asyncio.create_task(
                asyncio.to_thread(lambda: answers.append(get("127.0.0.1", lb.port, "/whoami")))
            )
            await asyncio.sleep(1.0)
            assert holder.waiting == 1 and not answers  # no replica yet: it waits, not fails
            endpoint.append(f"127.0.0.1:{apps[0].port}")
            holder.poke()
            await asyncio.wait_for(client, 10)
        finally:
            await holder.close()

    run(scenario())
    assert answers == [(200, "replica 1 v1\n")]


def test_the_holder_answers_503_when_no_replica_comes(lb: haproxy.LbSettings) -> None:
    async def scenario() -> tuple[int, str]:
        holder = Holder(lb.holder, lambda: None, timeout_s=0.5)
        await holder.start()
        try:
            return await asyncio.to_thread(get, "127.0.0.1", lb.port, "/")
        finally:
            await holder.close()

    status, body = run(scenario())
    assert status == 503 and "No replica" in body


def test_a_refused_configuration_is_a_coded_error(tmp_path: Path) -> None:
    from styx.errors import NotSupportedError

    (tmp_path / "bad.pem").write_text("not a certificate\n")
    settings = haproxy.LbSettings(
        tmp_path / "lb", "127.0.0.1", free_port(), tls_pem=tmp_path / "bad.pem"
    )
    with pytest.raises(NotSupportedError) as err:
        haproxy.check_config(settings)
    assert err.value.code == "load-balancer-config"


def test_tls_is_terminated_at_the_load_balancer(tmp_path: Path, apps: list[App]) -> None:
    import ssl
    import subprocess

    key, cert = tmp_path / "lb.key", tmp_path / "lb.crt"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    folder = tmp_path / "lb"
    folder.mkdir()
    pem = haproxy.write_tls(folder, str(key), str(cert))
    assert pem.stat().st_mode & 0o777 == 0o600
    settings = haproxy.LbSettings(folder, "127.0.0.1", free_port(), "least_load", tls_pem=pem)
    assert "balance leastconn" in haproxy.render(settings)
    haproxy.check_config(settings)
    haproxy.start(settings)
    try:
        apps.append(App("1"))
        run(haproxy.point(settings, "r1", "127.0.0.1", apps[0].port))
        context = ssl.create_default_context(cafile=str(cert))
        conn = http.client.HTTPSConnection("127.0.0.1", settings.port, context=context, timeout=10)
        conn.request("GET", "/whoami")
        resp = conn.getresponse()
        assert (resp.status, resp.read()) == (200, b"replica 1 v1\n")
        conn.close()
    finally:
        haproxy.stop(settings)
