"""``styx cost-report`` on a real local cluster: launch, stop, start, down through the CLI, with a
price for this machine in config.yaml.

Real Ray and the real agent run on this machine.
"""

from __future__ import annotations

import json
import time

import pytest
from tests.ops.conftest import Styx

pytestmark = pytest.mark.ray

PRICE = 36.0  # $/h per node: a cent per second, so seconds show in the cost


def report(styx: Styx) -> dict:
    r = styx("cost-report", "--json", check=True)
    return json.loads(r.stdout)


def test_launch_stop_start_down_is_billed_while_up(styx: Styx) -> None:
    (styx.home / "config.yaml").write_text(f"local:\n  hourly_price: {PRICE}\n")
    started = time.time()
    styx("launch", "examples/hello.yaml", "-c", "cost1", "-y", check=True)
    (c,) = [c for c in report(styx)["clusters"] if c["name"] == "cost1"]
    assert (c["status"], c["infra"], c["hourly_price"], c["num_nodes"]) == ("UP", "local", PRICE, 1)
    assert c["ended_at"] is None and len(c["intervals"]) == 1
    styx("stop", "cost1", "-y", check=True)
    stopped_at = time.time()
    time.sleep(2)  # not billed
    (styx.home / "config.yaml").write_text("local:\n  hourly_price: 1000\n")  # too late for it
    styx("start", "cost1", "-y", check=True)
    restarted_at = time.time()
    styx("down", "cost1", "-y", check=True)
    ended = time.time()

    (c,) = [c for c in report(styx)["clusters"] if c["name"] == "cost1"]
    assert c["status"] == "TERMINATED" and c["hourly_price"] == PRICE
    (a_start, a_end), (b_start, b_end) = c["intervals"]
    assert started <= a_start < a_end <= stopped_at
    assert stopped_at + 2 <= b_start <= restarted_at <= b_end <= ended
    assert c["ended_at"] == b_end
    seconds = (a_end - a_start) + (b_end - b_start)
    assert c["hours"] == pytest.approx(seconds / 3600)
    assert c["cost"] == pytest.approx(PRICE * seconds / 3600)
    assert seconds < ended - started - 2  # the stopped time is left out

    out = styx("cost-report", check=True).stdout
    line = next(line for line in out.splitlines() if line.startswith("cost1 "))
    assert "TERMINATED" in line and f"${PRICE:.2f}" in line and "1x" in line
