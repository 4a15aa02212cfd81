"""The testbed itself: hosts are separate machines to SSH, and each fault does what it says."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from testworld.testbed import Testbed

FAST = ["-oConnectTimeout=1"]


def test_hosts_are_separate_machines(testbed: Testbed) -> None:
    names = [testbed.ssh(h.index, "hostname").stdout.strip() for h in testbed.hosts]
    assert names == [h.name for h in testbed.hosts]
    testbed.ssh(1, "sh", "-c", "echo one > /tmp/mark; echo one > /root/mark")
    assert testbed.ssh(2, "cat", "/tmp/mark", "/root/mark").returncode != 0
    assert testbed.ssh(1, "cat", "/tmp/mark", "/root/mark").stdout == "one\none\n"
    # The running Python (under /root, read-only) and the checkout (/work) are visible.
    import sys

    out = testbed.ssh(2, sys.executable, "-c", "import styx; print(styx.__file__)")
    assert out.returncode == 0, out.stderr
    assert testbed.ssh(2, "touch", sys.base_prefix + "/x").returncode != 0  # read-only


def test_crash_and_reboot_keeps_root_and_wipes_tmp(testbed: Testbed) -> None:
    testbed.ssh(3, "sh", "-c", "touch /tmp/t /root/r")
    testbed.crash(3)
    assert not testbed.alive(3) and testbed.pids(3) == []
    t0 = time.monotonic()
    r = testbed.ssh(3, "true", options=FAST)
    assert r.returncode == 255 and time.monotonic() - t0 < 1  # refused at once
    testbed.reboot(3)
    assert testbed.ssh(3, "ls", "/root/r").returncode == 0
    assert testbed.ssh(3, "ls", "/tmp/t").returncode != 0


@pytest.mark.parametrize("fault", ["cut_link", "firewall_drop", "freeze"])
def test_silent_faults_time_out_and_restore(testbed: Testbed, fault: str) -> None:
    getattr(testbed, fault)(4)
    t0 = time.monotonic()
    r = testbed.ssh(4, "true", options=FAST, timeout=30)
    assert r.returncode == 255 and 0.9 < time.monotonic() - t0 < 5
    testbed.restore()
    assert testbed.ssh(4, "true").returncode == 0


def test_firewall_reject_refuses(testbed: Testbed) -> None:
    testbed.firewall_reject(4)
    t0 = time.monotonic()
    assert testbed.ssh(4, "true", options=FAST).returncode == 255
    assert time.monotonic() - t0 < 1


def test_second_testbed_takes_another_slot(testbed: Testbed, tmp_path: Path) -> None:
    with Testbed(tmp_path / "bed2", 1) as other:
        assert other.slot != testbed.slot
        assert other.host(1).ip != testbed.host(1).ip
        assert other.ssh(1, "hostname").stdout == "h1\n"
        assert testbed.ssh(1, "hostname").stdout == "h1\n"
    assert other.pids(1) == []
