"""Shared by the benchmark scripts: timing commands and printing medians with ratios.

Each script runs as `python bench/NAME.py`, which puts this folder on sys.path.
"""

from __future__ import annotations

import statistics
import subprocess
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def timed(argv: list[str], env: dict[str, str], runs: int) -> list[float]:
    """Wall seconds of ``runs`` runs of ``argv`` (output discarded; a failure stops the run)."""
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(
            argv,
            env=env,
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=True,
        )
        out.append(time.perf_counter() - t0)
    return out


def first_output(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Seconds from spawning ``argv`` to the first byte on its stdout, and to its exit."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        argv, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    assert proc.stdout is not None
    proc.stdout.read(1)
    first = time.perf_counter() - t0
    proc.stdout.read()
    proc.wait()
    return first, time.perf_counter() - t0


def report(name: str, samples: list[float], base: float | None = None) -> float:
    """Print median and p90 in ms (and the ratio of the median to ``base``); return the median."""
    med = statistics.median(samples)
    p90 = sorted(samples)[max(0, int(len(samples) * 0.9) - 1)]
    ratio = f"  ratio {med / base:5.2f}x" if base else ""
    print(f"{name:<52} median {med * 1000:8.1f} ms  p90 {p90 * 1000:8.1f} ms{ratio}")
    return med


def print_overhead(title: str, labels: tuple[str, str, str], rows: list[tuple[float, ...]]) -> None:
    """The launch-overhead table of the cloud benchmarks: medians of (wall time, the API's
    busy time, the slowest host boot, Styx's own overhead) and every run's four figures."""
    print(f"{title}, {len(rows)} runs (medians):")
    for label, k in ((labels[0], 0), (labels[1], 1), (labels[2], 2), ("Styx's own overhead", 3)):
        print(f"  {label:<28} {statistics.median(r[k] for r in rows):7.2f} s")
    print(
        "  per run (wall / api / boot / overhead): "
        + "; ".join(f"{a:.2f}/{b:.2f}/{c:.2f}/{d:.2f}" for a, b, c, d in rows)
    )
