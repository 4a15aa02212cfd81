"""`styx exec` on an up local cluster: from submit to first output.

Each sample spawns `styx exec CLUSTER 'echo x'` and times the first byte of the job's output on
stdout (and the whole command). Baselines measured in the same run: spawning `bash -c 'echo x'`
(the floor for running a command at all) and `python -c pass` (the floor for any Python CLI).
Run: .venv/bin/python bench/bench_exec.py [--runs 30]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def first_output(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proc.stdout is not None
    proc.stdout.read(1)
    first = time.perf_counter() - t0
    proc.stdout.read()
    proc.wait()
    return first, time.perf_counter() - t0


def stats(name: str, samples: list[float], base: float | None = None) -> float:
    med = statistics.median(samples)
    p90 = sorted(samples)[max(0, int(len(samples) * 0.9) - 1)]
    ratio = f"  ratio {med / base:5.2f}x" if base else ""
    print(f"{name:<44} median {med * 1000:7.1f} ms  p90 {p90 * 1000:7.1f} ms{ratio}")
    return med


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=30)
    args = ap.parse_args()
    styx = [sys.executable, "-m", "styx.cli.main"]
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "STYX_HOME": home}
        env.pop("STYX_DB_URL", None)
        up = subprocess.run(
            [*styx, "launch", "-c", "bench", "-y", "-d", "examples/hello.yaml"],
            env=env,
            cwd=REPO,
            capture_output=True,
            text=True,
        )
        if up.returncode != 0:
            sys.exit(f"launch failed: {up.stderr}")
        try:
            bash = [first_output(["bash", "-c", "echo x"], env)[0] for _ in range(args.runs)]
            py = [
                first_output([sys.executable, "-c", "print('x')"], env)[0] for _ in range(args.runs)
            ]
            runs = [first_output([*styx, "exec", "bench", "echo x"], env) for _ in range(args.runs)]
            base_bash = stats("baseline: bash -c 'echo x' (first output)", bash)
            base_py = stats("baseline: python -c \"print('x')\"", py)
            stats("styx exec: submit to first output", [r[0] for r in runs], base_py)
            stats("styx exec: whole command (job done)", [r[1] for r in runs], base_py)
            print(f"(ratio is to the python baseline; bash floor is {base_bash * 1000:.1f} ms)")
        finally:
            subprocess.run([*styx, "down", "bench", "-y"], env=env, cwd=REPO, capture_output=True)


if __name__ == "__main__":
    main()
