"""SSH latency on real test hosts: a new connection vs the ControlMaster vs ``SSHRunner.run``.

Boots one test host (tests/testworld, needs root), then times ``true`` three ways:
``ssh host true`` on a new connection each time (the baseline), the same ``ssh`` through a
running ControlMaster, and ``SSHRunner.run(["true"])`` (which checks the master, builds the
quoted remote command and runs it through the master). With ``--faults`` it also times how long
each failure takes to be reported (connect timeout 1 s, probe 0.5 s, 2 retries).
Run as root, best inside a loopback-only namespace:
  ip netns add styx-b; ip -n styx-b link set lo up
  ip netns exec styx-b .venv/bin/python bench/bench_ssh.py [--runs 30] [--faults]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from styx.cluster.ssh import SSHHost, SSHRunner
from testworld.testbed import Testbed, usable


def sample(fn: Callable[[], object], runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def report(name: str, samples: list[float], base: float | None = None) -> float:
    med = statistics.median(samples)
    p90 = sorted(samples)[max(0, int(len(samples) * 0.9) - 1)]
    ratio = f"  {base / med:6.1f}x faster than a new connection" if base else ""
    print(f"{name:<40} median {med * 1000:7.1f} ms  p90 {p90 * 1000:7.1f} ms{ratio}")
    return med


def failure_time(fn: Callable[[], object]) -> tuple[float, str]:
    t0 = time.perf_counter()
    try:
        fn()
        what = "no error"
    except Exception as e:
        what = f"{type(e).__name__}[{getattr(e, 'code', '')}]"
    return time.perf_counter() - t0, what


def faults(bed: Testbed, control_dir: str) -> None:
    h = bed.host(1)
    fast = {"connect_timeout": 1.0, "probe_timeout": 0.5, "connect_retries": 2}

    def runner(**kw: object) -> SSHRunner:
        host = SSHHost(h.name, h.ip, h.user, h.port, str(h.key))
        return SSHRunner(host, control_dir=control_dir, known_hosts_file=bed.root / "kh", **kw)  # type: ignore[arg-type]

    print("\nfailure detection (connect timeout 1 s, probe 0.5 s, 2 retries, backoff 0.5 s)")
    for fault, undo in (
        (bed.crash, bed.reboot),
        (bed.cut_link, bed.restore_link),
        (bed.freeze, bed.thaw),
        (bed.firewall_drop, bed.clear_firewall),
    ):
        fault(1)
        took, what = failure_time(lambda: runner(**fast).run(["true"]))
        undo(1)
        print(f"  new connection, {fault.__name__:<14} {took * 1000:8.0f} ms  {what}")
    bad = Path(control_dir) / "stranger"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(bad)], check=True)
    host = SSHHost(h.name, h.ip, h.user, h.port, str(bad))
    stranger = SSHRunner(host, control_dir=control_dir, known_hosts_file=bed.root / "kh")
    took, what = failure_time(lambda: stranger.run(["true"]))
    print(f"  new connection, {'wrong key':<14} {took * 1000:8.0f} ms  {what}")
    for fault, undo in ((bed.crash, bed.reboot), (bed.cut_link, bed.restore_link)):
        r = runner(server_alive_interval=1, server_alive_count_max=2, probe_timeout=0.5)
        r.run(["true"])
        box: dict[str, tuple[float, str]] = {}

        def session(r: SSHRunner = r, box: dict[str, tuple[float, str]] = box) -> None:
            box["x"] = failure_time(lambda: r.run(["sleep", "60"]))

        t = threading.Thread(target=session)
        t.start()
        time.sleep(0.3)
        t0 = time.perf_counter()
        fault(1)
        t.join()
        took = time.perf_counter() - t0
        undo(1)
        r.close()
        label = f"open session, {fault.__name__}"
        print(f"  {label:<30} {took * 1000:8.0f} ms  {box['x'][1]} (ServerAlive 1 s x 2)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--faults", action="store_true", help="also time failure detection")
    args = ap.parse_args()
    why = usable()
    if why:
        sys.exit(f"cannot make test hosts: {why}")
    with tempfile.TemporaryDirectory(prefix="styx-bench-ssh-") as tmp, Testbed(Path(tmp), 1) as bed:
        control_dir = tempfile.mkdtemp(prefix="styx-ssh-b", dir="/tmp")
        h = bed.host(1)
        runner = SSHRunner(
            SSHHost(h.name, h.ip, h.user, h.port, str(h.key)),
            control_dir=control_dir,
            known_hosts_file=bed.root / "kh",
        )
        plain = ["ssh", "-F", str(bed.ssh_config)]
        new = [*plain, "-oControlMaster=no", "-oControlPath=none", h.name, "true"]
        subprocess.run(new, check=True)  # host key accepted before timing
        runner.run(["true"]).check("warm-up")  # the master is up
        mux = [*plain, f"-oControlPath={runner.control_path}", "-oControlMaster=no", h.name, "true"]
        print(f"ssh to a test host ({h.ip}), {args.runs} runs each")
        base = report(
            "ssh host true (new connection)",
            sample(lambda: subprocess.run(new, check=True), args.runs),
        )
        report(
            "ssh host true (through ControlMaster)",
            sample(lambda: subprocess.run(mux, check=True), args.runs),
            base,
        )
        report(
            'SSHRunner.run(["true"])',
            sample(lambda: runner.run(["true"]).check("true"), args.runs),
            base,
        )
        runner.close()
        if args.faults:
            faults(bed, control_dir)
        subprocess.run(["rm", "-rf", control_dir], check=False)


if __name__ == "__main__":
    main()
