"""`styx exec` on an up local cluster: from submit to first output.

Each sample spawns `styx exec CLUSTER 'echo x'` and times the first byte of the job's output on
stdout (and the whole command). Baselines measured in the same run: spawning `bash -c 'echo x'`
(the floor for running a command at all) and `python -c pass` (the floor for any Python CLI).
Run: .venv/bin/python bench/bench_exec.py [--runs 30]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile

from _util import REPO, first_output, report


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
            base_bash = report("baseline: bash -c 'echo x' (first output)", bash)
            base_py = report("baseline: python -c \"print('x')\"", py)
            report("styx exec: submit to first output", [r[0] for r in runs], base_py)
            report("styx exec: whole command (job done)", [r[1] for r in runs], base_py)
            print(f"(ratio is to the python baseline; bash floor is {base_bash * 1000:.1f} ms)")
        finally:
            subprocess.run([*styx, "down", "bench", "-y"], env=env, cwd=REPO, capture_output=True)


if __name__ == "__main__":
    main()
