"""A containerized task's start on a warm host against the runtime's own `run` of the same image
and command, measured in the same run.

A local cluster runs `image_id: docker:styx-test/nopython:bookworm` (Debian minbase, no Python;
scripts/testimages.sh builds its root, imported here into a private podman store). Each sample:
- ours: `styx exec CLUSTER 'echo x'`, from spawning the CLI to the job's first output (submit
  through the agent, Ray, `podman exec` into the cluster's running container), and to its end;
- baseline: `podman run --rm --net=host IMAGE echo x`, to first output and to its end.
Run as root (podman, runc): .venv/bin/python bench/bench_containers.py [--runs 20]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from _util import REPO, first_output, report


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=20)
    args = ap.parse_args()
    sys.path.insert(0, str(REPO))
    from tests.testworld.containers import (
        IMAGE,
        ensure_cgroups,
        import_image,
        private_store,
        write_etc,
    )

    ensure_cgroups()
    styx = [sys.executable, "-m", "styx.cli.main"]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        etc = write_etc(root / "etc", "127.0.0.1")  # runc, no systemd, ulimits that fit
        (root / "home").mkdir()
        podman_env = {"CONTAINERS_CONF": str(etc / "containers.conf"), **private_store(root)}
        env = {**os.environ, "STYX_HOME": str(root / "home"), **podman_env}
        env.pop("STYX_DB_URL", None)
        import_image(podman_env)
        task = root / "task.yaml"
        task.write_text(f"resources:\n  infra: local\n  image_id: docker:{IMAGE}\nrun: echo up\n")
        up = subprocess.run([*styx, "launch", str(task), "-c", "cbench", "-y"], env=env,
                            cwd=REPO, capture_output=True, text=True)  # fmt: skip
        if up.returncode != 0:
            sys.exit(f"launch failed: {up.stdout}{up.stderr}")
        bare_task = root / "bare.yaml"
        bare_task.write_text("resources:\n  infra: local\nrun: echo up\n")
        up = subprocess.run([*styx, "launch", str(bare_task), "-c", "bbench", "-y"], env=env,
                            cwd=REPO, capture_output=True, text=True)  # fmt: skip
        if up.returncode != 0:
            sys.exit(f"launch failed: {up.stdout}{up.stderr}")
        try:
            podman = ["podman", "run", "--rm", "--net=host", IMAGE, "echo", "x"]
            exec_ = ["podman", "exec", "styx-cbench", "echo", "x"]
            first_output(podman, env)  # warm each once
            first_output([*styx, "exec", "cbench", "echo x"], env)
            base, execs, ours, bare = [], [], [], []
            for _ in range(args.runs):  # interleaved: a slow moment hits every series alike
                base.append(first_output(podman, env))
                execs.append(first_output(exec_, env))
                ours.append(first_output([*styx, "exec", "cbench", "echo x"], env))
                bare.append(first_output([*styx, "exec", "bbench", "echo x"], env))
            b_first = report("baseline: podman run --rm IMAGE echo x (first output)",
                             [r[0] for r in base])  # fmt: skip
            b_whole = report("baseline: podman run (whole command)", [r[1] for r in base])
            report("podman exec into a running container (first output)",
                   [r[0] for r in execs], b_first)  # fmt: skip
            o_first = report("styx exec CLUSTER 'echo x' in the image (first output)",
                             [r[0] for r in ours], b_first)  # fmt: skip
            report("styx exec (whole command, job done)", [r[1] for r in ours], b_whole)
            n_first = report("styx exec on a bare local cluster (first output)",
                             [r[0] for r in bare])  # fmt: skip
            print(
                f"the image's cost in styx exec: {(o_first - n_first) * 1000:.1f} ms, "
                f"{(o_first - n_first) / b_first:.2f}x podman run's start"
            )
        finally:
            for name in ("cbench", "bbench"):
                subprocess.run([*styx, "down", name, "-y"], env=env, cwd=REPO, capture_output=True)
            subprocess.run(["podman", "rmi", "-a", "-f"], env=env, capture_output=True)


if __name__ == "__main__":
    main()
