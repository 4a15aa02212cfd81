"""Buckets on a node: Styx's COPY and MOUNT against the raw tool on the same data, the same
stand-in and the same machine, measured in the same run, runs interleaved.

For each store (moto's S3, fake-gcs-server, Azurite, all on 127.0.0.1):
- COPY: ``--files`` objects of ``--size-mb`` MB (1 GB by default) copied to a local folder.
  Styx: the node step a launch runs (``styx.cluster.bucket_mounts.mount_on_node``: the bucket
  probe, then ``rclone copyto`` with Styx's flags), on this machine through the local runner,
  with the rclone remote the store gives the nodes. Raw: ``rclone copy REMOTE:BUCKET DEST``
  with rclone's defaults, the same remote.
- MOUNT: a ``--read-mb`` MB object. Styx: mounted as a task's ``mode: MOUNT`` is (the same
  node step; rclone mount without a VFS cache), then a new process reads its first byte, and
  ``cat`` reads it whole. Raw: ``rclone cat --count 1`` and ``rclone cat`` of the object.
  For S3 also s3fs (the other FUSE tool in Debian) reading the same object: the choice.

Needs rclone and fuse3 (root, /dev/fuse). Run:
  .venv/bin/python bench/bench_buckets.py [--stores s3,gcs,azure] [--runs 3]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from _util import REPO


def rclone_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("AWS_CA_BUNDLE", None)  # rclone's S3 backend refuses to start while it is set
    return env


@contextlib.contextmanager
def standin(store: str, root: Path) -> Iterator[object]:
    from tests.testworld.buckets import MotoS3

    if store == "s3":
        with MotoS3("127.0.0.1", root) as s3:
            yield s3
    elif store == "gcs":
        from tests.testworld.gcs import FakeGCS

        with FakeGCS("127.0.0.1", root) as gcs:
            yield gcs
    else:
        from tests.testworld.azurite import Azurite

        with Azurite("127.0.0.1", root) as az:
            yield az


def timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def run(argv: list[str], stdout: int = subprocess.PIPE) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(argv, env=rclone_env(), check=True, stdout=stdout, stderr=subprocess.PIPE)


def first_byte(argv: list[str]) -> float:
    """Seconds from spawning ``argv`` to the first byte on its stdout."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, env=rclone_env(), stdout=subprocess.PIPE)
    assert proc.stdout is not None
    proc.stdout.read(1)
    took = time.perf_counter() - t0
    proc.stdout.read()
    proc.wait()
    return took


def unmount(path: Path) -> None:
    for argv in (["fusermount3", "-u", str(path)], ["fusermount3", "-uz", str(path)]):
        if subprocess.run(argv, capture_output=True, check=False).returncode == 0:
            break
    for _ in range(50):
        if f" {path} " not in Path("/proc/mounts").read_text():
            return
        time.sleep(0.1)


def line(
    name: str, seconds: list[float], mb: float | None = None, base: float | None = None
) -> float:
    med = statistics.median(seconds)
    speed = f"  {mb / med:8.1f} MB/s" if mb else " " * 15
    ratio = f"  {base / med:5.2f}x of raw" if base else ""
    print(f"  {name:<46} median {med * 1000:9.1f} ms{speed}{ratio}", flush=True)
    return med


def bench_store(store: str, args: argparse.Namespace, work: Path) -> None:
    from styx.cluster import bucket_mounts as bm
    from styx.cluster.runner import LocalRunner
    from styx.providers import stores
    from styx.spec.buckets import parse_bucket_url

    with standin(store, work / f"{store}-server") as server:
        os.environ.update(server.env())  # type: ignore[attr-defined]
        stores.reset()
        bucket = f"styx-bench-{store}"
        server.create(bucket)  # type: ignore[attr-defined]
        url = parse_bucket_url(server.url(bucket))  # type: ignore[attr-defined]
        s = stores.store(store)
        remote = s.rclone_remote(url)
        root = work / f"{store}-root"
        runner = LocalRunner()
        bm.write_config(runner, str(root), bm.config_text({"m0": remote}))
        conf = str(root / bm.STORAGE_DIR / "rclone.conf")
        path = s.rclone_path(url)

        data = work / "data"
        if not data.exists():
            data.mkdir()
            chunk = os.urandom(args.size_mb * 2**20)
            for i in range(args.files):  # distinct files (rclone compares sizes and times only)
                (data / f"f{i:03d}.bin").write_bytes(chunk[i:] + chunk[:i])
            (work / "big.bin").write_bytes(os.urandom(args.read_mb * 2**20))
        total_mb = args.files * args.size_mb
        up = timed(lambda: run(["rclone", "--config", conf, "copy", str(data), f"m0:{path}/copy",
                                "--transfers", "8"]))  # fmt: skip
        run(["rclone", "--config", conf, "copyto", str(work / "big.bin"), f"m0:{path}/big.bin"])
        print(f"{store}: {args.files} x {args.size_mb} MB uploaded in {up:.1f} s", flush=True)

        raw_copy, styx_copy = [], []
        for i in range(args.runs):
            dest = work / f"raw-{i}"
            raw_copy.append(timed(lambda d=dest: run(["rclone", "--config", conf, "copy",  # type: ignore[misc]
                                                      f"m0:{path}/copy", str(d)])))  # fmt: skip
            shutil.rmtree(dest)
            dest = work / f"styx-{i}"
            mount = bm.NodeMount(
                str(dest), "COPY", f"m0:{path}/copy", bm.flags_for("COPY", (), False)
            )
            styx_copy.append(timed(lambda m=mount: bm.mount_on_node(runner, str(root), m)))  # type: ignore[misc]
            assert len(os.listdir(dest)) == args.files, "Styx's copy is incomplete"
            shutil.rmtree(dest)
        print(f" COPY {total_mb} MB in {args.files} files ({args.runs} runs, interleaved)")
        base = line("raw: rclone copy (rclone's defaults)", raw_copy, total_mb)
        line("Styx: COPY node step (probe + copyto)", styx_copy, total_mb, base)

        obj = f"m0:{path}/big.bin"
        raw_first, raw_seq, mnt_setup, mnt_first, mnt_seq = [], [], [], [], []
        for i in range(args.runs):
            raw_first.append(first_byte(["rclone", "--config", conf, "cat", "--count", "1", obj]))
            raw_seq.append(timed(lambda: run(["rclone", "--config", conf, "cat", obj], stdout=subprocess.DEVNULL)))  # fmt: skip
            where = work / f"mnt-{i}"
            mount = bm.NodeMount(
                str(where), "MOUNT", f"m0:{path}", bm.flags_for("MOUNT", (), False)
            )
            mnt_setup.append(timed(lambda m=mount: bm.mount_on_node(runner, str(root), m)))  # type: ignore[misc]
            try:
                mnt_first.append(first_byte(["head", "-c", "1", str(where / "big.bin")]))
                mnt_seq.append(timed(lambda w=where: run(["cat", str(w / "big.bin")], stdout=subprocess.DEVNULL)))  # type: ignore[misc]  # fmt: skip
            finally:
                unmount(where)
        mb = args.read_mb
        print(f" MOUNT, one {mb} MB object ({args.runs} runs, interleaved)")
        first = line("raw: rclone cat --count 1, first byte", raw_first)
        line("Styx MOUNT: first byte (a new process)", mnt_first, None, first)
        seq = line("raw: rclone cat, whole object", raw_seq, mb)
        line("Styx MOUNT: cat, whole object", mnt_seq, mb, seq)
        line("Styx MOUNT: mount set-up (probe + rclone mount)", mnt_setup)
        if store == "s3" and shutil.which("s3fs"):
            s3fs_first, s3fs_seq = [], []
            creds = work / "s3fs.passwd"
            creds.write_text(f"{remote['access_key_id']}:{remote['secret_access_key']}\n")
            creds.chmod(0o600)
            for i in range(args.runs):
                where = work / f"s3fs-{i}"
                where.mkdir()
                run(["s3fs", url.bucket, str(where), "-o", f"url={remote['endpoint']}",
                     "-o", "use_path_request_style", "-o", f"passwd_file={creds}"])  # fmt: skip
                try:
                    for _ in range(100):
                        if (where / "big.bin").exists():
                            break
                        time.sleep(0.05)
                    s3fs_first.append(first_byte(["head", "-c", "1", str(where / "big.bin")]))
                    s3fs_seq.append(timed(lambda w=where: run(["cat", str(w / "big.bin")], stdout=subprocess.DEVNULL)))  # type: ignore[misc]  # fmt: skip
                finally:
                    unmount(where)
            line("the alternative, s3fs: first byte", s3fs_first, None, first)
            line("the alternative, s3fs: cat, whole object", s3fs_seq, mb, seq)
        bm.release(runner, str(root), wait_s=30)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--stores", default="s3,gcs,azure")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--files", type=int, default=100)
    ap.add_argument("--size-mb", type=int, default=10)
    ap.add_argument("--read-mb", type=int, default=100)
    args = ap.parse_args()
    sys.path.insert(0, str(REPO))
    sys.path.insert(0, str(REPO / "src"))
    for tool in ("rclone", "fusermount3"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is not installed (apt-get install rclone fuse3)")
    with tempfile.TemporaryDirectory(dir=os.environ.get("STYX_BENCH_TMP")) as tmp:
        for store in args.stores.split(","):
            bench_store(store.strip(), args, Path(tmp))


if __name__ == "__main__":
    main()
