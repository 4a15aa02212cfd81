"""Buckets as file mounts, end to end, for each store: COPY, MOUNT and MOUNT_CACHED on a 2-node
SSH cluster of real sshd hosts, with real rclone and FUSE on the hosts.

The stores are stand-ins, since no real cloud is reachable here: moto's S3 server, fake-gcs-server
and Azurite, each driven by its official SDK on this machine and by rclone on the nodes, each
behind a fault proxy (tests/testworld/buckets.py) that can deny a bucket, cut off one node or
slow every transfer. They listen on the test bed's bridge, the one address hosts reach.

After every test: no cluster, no Styx process, no rclone process or FUSE mount on any host,
and no bucket left that Styx made for ``persistent: false`` storage.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests import leaks
from tests.jobs import e2e
from tests.ops.conftest import Styx, assert_no_leaks, wheelhouse
from tests.testworld.buckets import BucketProxy, standin
from tests.testworld.testbed import Testbed

from styx.jobs.controller import cluster_name
from styx.state import db as dbmod
from styx.state.clusters import list_clusters
from styx.state.db import Database
from styx.state.records import ManagedJobStatus

pytestmark = [pytest.mark.ray, pytest.mark.slow]
HOSTS = (1, 2, 3, 4)  # the shared testbed's
STORES = ("s3", "gcs", "azure")


def _fuse_and_rclone() -> str | None:
    import shutil

    if shutil.which("rclone") is None:
        return "rclone is not installed (apt-get install rclone fuse3)"
    if not Path("/dev/fuse").exists() or shutil.which("fusermount3") is None:
        return "no FUSE here (/dev/fuse and fusermount3, apt-get install fuse3)"
    return None


@pytest.fixture(scope="module")
def bed(testbed: Testbed) -> Testbed:
    """The suite's shared hosts (tests/conftest.py), with rclone, FUSE and the wheelhouse."""
    why = _fuse_and_rclone()
    if why:
        pytest.skip(why)
    if wheelhouse() is None:
        pytest.skip("no wheelhouse with Ray (scripts/test.sh builds .wheelhouse before the tests)")
    return testbed


@pytest.fixture(scope="module", params=STORES)
def world(
    request: pytest.FixtureRequest, bed: Testbed, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[BucketProxy]:
    store = str(request.param)
    with (
        standin(store, bed.bridge_ip, tmp_path_factory.mktemp(f"store-{store}")) as server,
        BucketProxy(server) as proxy,
    ):
        yield proxy


@pytest.fixture(scope="module")
def home(bed: Testbed, tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("styx-bucket-home")
    hosts = "\n".join(f"    - {h.ip}" for h in bed.hosts)
    (home / "ssh_node_pools.yaml").write_text(
        f"lab:\n  user: root\n  identity_file: {bed.key}\n  hosts:\n{hosts}\n"
    )
    return home


def node_leftovers(bed: Testbed) -> list[str]:
    """rclone processes and FUSE mounts of rclone on any live host."""
    found = []
    for i in HOSTS:
        if not bed.alive(i):
            continue
        mounts = bed.ssh(i, "cat", "/proc/mounts").stdout
        found += [f"h{i} mount: {line}" for line in mounts.splitlines() if "rclone" in line]
        for pid in bed.pids(i):
            try:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if "rclone" in cmd:
                found.append(f"h{i} process {pid}: {cmd[:160]}")
    return found


@pytest.fixture
def styx(home: Path, world: BucketProxy, bed: Testbed) -> Iterator[Styx]:
    before = leaks.snapshot()
    env = {"STYX_WHEELHOUSE": str(wheelhouse()), **world.env()}
    runner = Styx(home, extra_env=env)
    made_before = set(world.buckets())
    try:
        yield runner
    finally:
        world.reset()  # faults off first: teardown itself must reach the store
    runner("down", "--all", "-y", timeout=300)
    runner("storage", "delete", "--all", "-y", timeout=120)
    assert_no_leaks(before, home)
    e2e.wait_until(lambda: not node_leftovers(bed), 30, "no rclone on the hosts")
    left = set(world.buckets()) - made_before
    assert not {b for b in left if b.startswith("styx-")}, left


@pytest.fixture(autouse=True)
def _restore_faults(bed: Testbed) -> Iterator[None]:
    yield
    for i in HOSTS:
        if not bed.alive(i):
            bed.reboot(i)
    bed.restore()


def uid() -> str:
    return uuid.uuid4().hex[:8]


def task(tmp_path: Path, text: str) -> str:
    path = tmp_path / f"task-{uid()}.yaml"
    path.write_text(text)
    return str(path)


def storage_ls(styx: Styx) -> dict[str, dict[str, object]]:
    return {r["name"]: r for r in json.loads(styx("storage", "ls", "--json", check=True).stdout)}


def clusters(styx: Styx) -> list[str]:
    return [r["name"] for r in json.loads(styx("status", "--json", check=True).stdout)]


def test_copy_mount_and_cached_on_two_nodes(
    styx: Styx, world: BucketProxy, bed: Testbed, tmp_path: Path
) -> None:
    src, cached, up = f"t-src-{uid()}", f"styx-ck-{uid()}", f"styx-up-{uid()}"
    world.create(src)
    world.put(src, "data/a.txt", b"alpha\n")
    world.put(src, "data/sub/b.txt", b"beta\n")
    big = os.urandom(3 * 2**20 + 17)
    world.put(src, "big.bin", big)
    folder = tmp_path / "up"
    (folder / "nested").mkdir(parents=True)
    (folder / "hello.txt").write_text("uploaded\n")
    (folder / "nested" / "n.txt").write_text("deep\n")
    yaml = task(
        tmp_path,
        f"""
name: bk
resources: {{infra: ssh/lab}}
num_nodes: 2
file_mounts:
  ~/copy: {world.url(src, "data")}
  ~/mnt:
    source: {world.url(src)}
    mode: MOUNT
  ~/ck:
    name: {cached}
    store: {world.store}
    mode: MOUNT_CACHED
  ~/up:
    name: {up}
    source: {folder}
    persistent: false
run: |
  set -e
  echo "copy $(cat ~/copy/a.txt ~/copy/sub/b.txt | tr '\\n' ' ')"
  echo "md5 $(md5sum ~/mnt/big.bin | cut -d' ' -f1)"
  echo "up $(cat ~/up/hello.txt ~/up/nested/n.txt | tr '\\n' ' ')"
  echo "rank $SKYPILOT_NODE_RANK" > ~/ck/rank-$SKYPILOT_NODE_RANK.txt
  echo "fuse $(grep -c fuse.rclone /proc/mounts)"
""",
    )
    r = styx("launch", yaml, "-c", "bk", "-y", timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout
    assert out.count("copy alpha beta") == 2, out
    assert out.count(f"md5 {hashlib.md5(big).hexdigest()}") == 2, out
    assert out.count("up uploaded deep") == 2, out
    assert out.count("fuse 3") == 2, out  # ~/mnt, ~/ck, ~/up on each node
    # The folder went into a bucket the store chose (no 'store:' given): this stand-in's.
    assert world.keys(up) == ["hello.txt", "nested/n.txt"]
    # MOUNT_CACHED writes reach the bucket once written back (1 s by default).
    want = ["rank-0.txt", "rank-1.txt"]
    e2e.wait_until(lambda: world.keys(cached) == want, 60, "the cached writes in the bucket")
    assert world.get(cached, "rank-1.txt") == b"rank 1\n"
    # A plain MOUNT writes straight through: the object is there when the command returns.
    r = styx(
        "exec",
        "bk",
        "--num-nodes",
        "2",
        "echo written > ~/mnt/w-$SKYPILOT_NODE_RANK.txt",
        timeout=300,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert world.get(src, "w-0.txt") == b"written\n"
    assert world.get(src, "w-1.txt") == b"written\n"

    # The store's credentials: on the nodes only in the cluster's rclone config (0600, in a
    # 0700 folder), never in the state database or in what Styx printed.
    secrets = [world.env().get("AWS_SECRET_ACCESS_KEY", "")]  # S3; GCS's stand-in has none
    conn = world.env().get("AZURE_STORAGE_CONNECTION_STRING", "")
    secrets += [p.split("=", 1)[1] for p in conn.split(";") if p.startswith("AccountKey=")]
    secrets = [x for x in secrets if x]
    assert secrets or world.store == "gcs"
    for db in styx.home.rglob("*.db*"):
        assert not any(x.encode() in db.read_bytes() for x in secrets), db
    assert not any(x in r.stdout + r.stderr for x in secrets)
    for i in (1, 2):
        conf = bed.ssh(
            i, "sh", "-c", "stat -c %a ~/.styx/agent/storage ~/.styx/agent/storage/rclone.conf"
        )
        assert conf.stdout.split() == ["700", "600"], conf.stdout + conf.stderr

    listed = storage_ls(styx)
    assert set(listed) == {cached, up}, listed
    assert listed[up]["store"] == world.store and listed[up]["persistent"] is False
    assert listed[cached]["clusters"] == ["bk"]
    states = json.loads(styx("storage", "mounts", "bk", "--json", check=True).stdout)
    assert len(states) == 6, states  # 3 mounts on each of 2 nodes
    assert all(s["mounted"] and s["pending_files"] == 0 for s in states), states

    r = styx("down", "bk", "-y", timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert not node_leftovers(bed)
    assert not world.exists(up)  # persistent: false, made by Styx: gone with the cluster
    assert world.exists(cached) and world.exists(src)  # kept: persistent, and not Styx's
    assert set(storage_ls(styx)) == {cached}
    r = styx("storage", "delete", cached, "-y", timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert not world.exists(cached) and world.exists(src)
    assert storage_ls(styx) == {}
    r = styx("storage", "delete", cached, "-y")
    assert r.returncode == 3 and "storage-not-found" in r.stderr, r.stderr


def test_bad_buckets_are_refused_before_provisioning(
    styx: Styx, world: BucketProxy, bed: Testbed, tmp_path: Path
) -> None:
    denied = f"t-deny-{uid()}"
    world.create(denied)
    world.deny(denied)
    missing = f"t-missing-{uid()}"
    malformed = {
        "s3": "s3://Bad_Bucket/x",
        "gcs": "gs://-bad-/x",
        "azure": "https://devstoreaccount1.blob.core.windows.net/",
    }[world.store]
    cases = [
        (world.url(missing, "x"), "bucket-not-found", 3),
        (world.url(denied), "bucket-access-denied", 7),
        (malformed, "invalid-bucket-url", 2),
    ]

    def on_hosts() -> list[str]:
        return [bed.ssh(h.index, "sh", "-c", "find ~/.styx* -maxdepth 3 2>/dev/null").stdout
                for h in bed.hosts]  # fmt: skip

    before = on_hosts()
    for url, code, exit_code in cases:
        start = time.monotonic()
        r = styx("launch", task(tmp_path, f"resources: {{infra: ssh/lab}}\nfile_mounts:\n  ~/d: {url}\nrun: 'true'\n"), "-c", "bad", "-y")  # fmt: skip
        assert r.returncode == exit_code, (url, r.stdout, r.stderr)
        assert f"[{code}]" in r.stderr, r.stderr
        assert "Traceback" not in r.stderr
        assert time.monotonic() - start < 30
        assert clusters(styx) == []
    # No host was touched: only this machine spoke to the store, and no host got a folder.
    assert world.clients() <= {bed.bridge_ip}
    assert on_hosts() == before


def test_a_mount_failure_on_one_node_fails_the_launch_cleanly(
    styx: Styx, world: BucketProxy, bed: Testbed, tmp_path: Path
) -> None:
    src, up = f"t-src-{uid()}", f"styx-up-{uid()}"
    world.create(src)
    world.put(src, "f.txt", b"f\n")
    folder = tmp_path / "up"
    folder.mkdir()
    (folder / "x.txt").write_text("x\n")
    for h in bed.hosts[1:]:  # the pool gives h1 and h2: h1 reaches the store, h2 does not
        world.block(h.ip)
    r = styx("launch", task(tmp_path, f"""
resources: {{infra: ssh/lab}}
num_nodes: 2
file_mounts:
  ~/up: {{name: {up}, source: {folder}, store: {world.store}, persistent: false}}
  ~/mnt: {{source: {world.url(src)}, mode: MOUNT}}
run: 'true'
"""), "-c", "half", "-y", timeout=600)  # fmt: skip
    assert r.returncode == 7, r.stdout + r.stderr
    assert "[store-unreachable]" in r.stderr or "[bucket-mount-failed]" in r.stderr, r.stderr
    assert " on h2" in r.stderr and " on h1" not in r.stderr  # the failing node is named
    assert clusters(styx) == []
    assert not world.exists(up)  # the bucket made for the failed launch went with it
    assert storage_ls(styx) == {}
    assert not node_leftovers(bed)


def test_cached_writes_survive_up_to_what_was_flushed_when_a_node_dies(
    styx: Styx, world: BucketProxy, bed: Testbed, tmp_path: Path
) -> None:
    if world.store != "s3":
        pytest.skip("the write-back path is rclone's and the same for every store: shown on S3")
    bucket = f"styx-ck-{uid()}"
    r = styx("launch", task(tmp_path, f"""
resources: {{infra: ssh/lab}}
file_mounts:
  ~/ck: {{name: {bucket}, store: {world.store}, mode: MOUNT_CACHED}}
run: 'true'
"""), "-c", "ck1", "-y", timeout=600)  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    r = styx("exec", "ck1", "head -c 65536 /dev/urandom > ~/ck/first.bin && md5sum ~/ck/first.bin")
    assert r.returncode == 0, r.stdout + r.stderr
    e2e.wait_until(lambda: world.keys(bucket) == ["first.bin"], 60, "the first write flushed")
    first = world.get(bucket, "first.bin")
    assert hashlib.md5(first).hexdigest() in r.stdout
    world.rate = 64 * 1024  # a slow link: the next write stays pending for a while
    started = time.monotonic()
    r = styx("exec", "ck1", "head -c 4000000 /dev/urandom > ~/ck/second.bin", timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert time.monotonic() - started < 60  # a write returns at local speed
    time.sleep(2)  # past the write-back delay: the upload is under way
    states = json.loads(styx("storage", "mounts", "ck1", "--json", check=True).stdout)
    assert [s["pending_files"] for s in states] == [1], states
    [address] = [s["node"] for s in states]
    victim = next(h.index for h in bed.hosts if address in (h.name, h.ip))
    bed.crash(victim)
    world.rate = None
    states = json.loads(styx("storage", "mounts", "ck1", "--json", check=True).stdout)
    assert [s["reachable"] for s in states] == [False], states
    # What was flushed is whole; what was not is absent, never half an object.
    assert world.get(bucket, "first.bin") == first
    assert world.keys(bucket) in (["first.bin"], ["first.bin", "second.bin"])
    if "second.bin" in world.keys(bucket):
        assert len(world.get(bucket, "second.bin")) == 4000000


def test_a_managed_job_resumes_from_its_checkpoint_after_a_host_kill(
    styx: Styx, world: BucketProxy, bed: Testbed, home: Path
) -> None:
    if world.store != "s3":
        pytest.skip("recovery with a MOUNT_CACHED bucket is store-agnostic: shown on S3")
    bucket = f"styx-ckpt-{uid()}"
    env = {**styx.env(), "STYX_HOME": str(home), **e2e.FAST_CONTROLLER}
    dbmod.clear_cache()
    os.environ["STYX_HOME"] = str(home)
    try:
        db = Database.open()
        yaml = f"""name: ckpt
resources: {{infra: ssh/lab}}
file_mounts:
  ~/ckpt: {{name: {bucket}, store: {world.store}, mode: MOUNT_CACHED}}
run: |
  step=$(cat ~/ckpt/step 2>/dev/null || echo 0)
  echo "resumed-from $step" >> ~/ckpt/attempts
  while [ "$step" -lt 15 ]; do
    step=$((step + 1)); echo "$step" > ~/ckpt/step.new && mv ~/ckpt/step.new ~/ckpt/step
    sleep 1
  done
  echo done >> ~/ckpt/attempts
"""
        [job_id] = e2e.launch(env, home, "ckpt", yaml)
        e2e.wait_status(db, job_id, ManagedJobStatus.RUNNING, 600)

        def step() -> int:
            try:
                return int(world.get(bucket, "step").strip() or 0)
            except Exception:
                return 0

        e2e.wait_until(lambda: step() >= 4, 120, "a few checkpoints in the bucket")
        [address] = e2e.cluster_hosts(db, cluster_name(job_id))
        victim = next(h.index for h in bed.hosts if h.ip == address)
        saved = step()
        bed.crash(victim)
        e2e.wait_status(db, job_id, ManagedJobStatus.SUCCEEDED, 900, attempt=1)
        # MOUNT_CACHED writes back after the job: the teardown of its cluster flushes them.
        e2e.wait_until(
            lambda: cluster_name(job_id) not in [c.name for c in list_clusters(db)],
            300,
            "the job's cluster to go",
        )
        lines = world.get(bucket, "attempts").decode().split()
        assert lines[:2] == ["resumed-from", "0"], lines
        resumed = int(lines[lines.index("resumed-from", 1) + 1])
        assert resumed >= saved >= 4, (lines, saved)  # from the last flushed step, not from 0
        assert lines[-1] == "done" and step() == 15
        db.close()
    finally:
        e2e.stop_everything(home)
        os.environ.pop("STYX_HOME", None)
        dbmod.clear_cache()
