"""Issue 11 on the local cloud, through the real CLI with real Ray: a cluster never touches
what it does not own, keeps no secret, opens no port to the network, never hangs, and leaves
nothing behind. Each test is a repro that failed before the fix."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests import leaks
from tests.ops.conftest import REPO, Styx, assert_no_leaks, wait_for
from tests.state.conftest import pg_schema_url, pg_url  # noqa: F401 (fixtures)

from styx.agent.bootstrap import ray_private_dir
from styx.agent.proctree import marked_with

pytestmark = pytest.mark.ray

HELLO = str(REPO / "examples" / "hello.yaml")


@pytest.fixture(scope="module")
def cluster(styx: Styx) -> str:
    r = styx("launch", HELLO, "-c", "s1", "-y")
    assert r.returncode == 0, r.stderr
    return "s1"


def write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


def statuses(styx: Styx) -> dict[str, str]:
    return {c["name"]: c["status"] for c in json.loads(styx("status", "--json").stdout)}


def jobs(styx: Styx, cluster: str) -> dict[int, dict]:
    out = styx("queue", cluster, "--json", check=True).stdout
    return {j["job_id"]: j for j in json.loads(out)[cluster]}


def cluster_pids(styx: Styx, name: str) -> set[int]:
    """Every live process of the cluster: its Ray (by owner marker and session), its jobs and
    its agent and supervisor (their command lines name the agent root)."""
    root = styx.home / "clusters" / name / "agent"
    folder = ray_private_dir(str(os.path.realpath(root)))
    pids = set(marked_with("STYX_RAY_OWNER", folder))
    try:
        sessions = {int(x) for x in Path(folder, "sessions").read_text().split()}
    except OSError:
        sessions = set()
    for pid, cmd in leaks.styx_processes().items():
        try:
            if os.getsid(pid) in sessions or str(root) in cmd:
                pids.add(pid)
        except OSError:
            continue
    return pids


# --- 1. file mounts and the workdir stay in the cluster's own folders ---------------------------


def test_mounts_outside_the_cluster_are_refused_before_anything_is_made(
    styx: Styx, cluster: str, tmp_path: Path
) -> None:
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_text("precious")
    (tmp_path / "victim.conf").write_text("original")
    empty, evil = tmp_path / "emptysrc", tmp_path / "evil"
    empty.mkdir()
    evil.write_text("evil")
    user_home = Path(styx.env()["HOME"])
    (user_home / "sentinel").write_text("still here")
    cases = {
        str(victim): empty,
        str(tmp_path / "victim.conf"): evil,
        "~/": empty,
        "~": empty,
        "/etc/passwd": evil,
        "~/../../../": empty,
        str(user_home): empty,
        str(styx.home): empty,
    }
    for i, (dest, src) in enumerate(cases.items()):
        task = write(tmp_path / f"t{i}.yaml", f"file_mounts:\n  {dest}: {src}\nrun: echo hi\n")
        for args in (
            ("launch", "-c", "fresh", "-y", task),
            ("launch", "--dryrun", task),
            ("validate", task),
            ("exec", cluster, task),
        ):
            r = styx(*args)
            assert r.returncode == 2, (dest, args, r.stdout, r.stderr)
            assert "mount-destination-refused" in r.stdout + r.stderr, (dest, args, r.stderr)
    assert (victim / "keep.txt").read_text() == "precious"
    assert (tmp_path / "victim.conf").read_text() == "original"
    assert (user_home / "sentinel").read_text() == "still here"
    assert (styx.home / "state.db").exists()
    assert "fresh" not in statuses(styx)  # refused before provisioning: nothing was made
    assert not (styx.home / "clusters" / "fresh").exists()


def test_mounts_land_in_the_nodes_own_home_and_mirror_there(
    styx: Styx, cluster: str, tmp_path: Path
) -> None:
    src = tmp_path / "data"
    src.mkdir()
    (src / "a.txt").write_text("alpha")
    (src / "b.txt").write_text("beta")
    (tmp_path / "app.conf").write_text("conf-1")
    task = write(
        tmp_path / "t.yaml",
        f"file_mounts:\n  ~/data: {src}\n  cfg/app.conf: {tmp_path / 'app.conf'}\n"
        "run: |\n  ls ~/data; cat ~/cfg/app.conf; echo; echo HOME=$HOME; echo PWD=$(pwd)\n",
    )
    r = styx("exec", cluster, task)
    assert r.returncode == 0, r.stderr
    node_home = styx.home / "clusters" / cluster / "home"
    assert "a.txt" in r.stdout and "b.txt" in r.stdout and "conf-1" in r.stdout
    assert f"HOME={os.path.realpath(node_home)}" in r.stdout
    assert (node_home / "data" / "a.txt").read_text() == "alpha"
    (src / "b.txt").unlink()  # a folder Styx made for the cluster is a mirror
    r = styx("exec", cluster, task)
    assert r.returncode == 0 and "b.txt" not in r.stdout, r.stdout


def test_config_may_allow_a_host_folder_where_nothing_is_deleted(
    styx: Styx, cluster: str, tmp_path: Path
) -> None:
    shared = tmp_path / "shared"
    (shared / "sub").mkdir(parents=True)
    (shared / "sub" / "old.txt").write_text("theirs")
    src = tmp_path / "src"
    src.mkdir()
    (src / "new.txt").write_text("ours")
    config = styx.home / "config.yaml"
    task = write(
        tmp_path / "t.yaml", f"file_mounts:\n  {shared}/sub: {src}\nrun: ls {shared}/sub\n"
    )
    try:
        config.write_text(f"local:\n  allowed_host_paths: [{shared}]\n")
        r = styx("exec", cluster, task)
        assert r.returncode == 0, r.stderr
        assert "new.txt" in r.stdout and "old.txt" in r.stdout
        assert (shared / "sub" / "old.txt").read_text() == "theirs"  # never deleted there
        for bad in ("/", "/etc", str(styx.home), str(Path(styx.env()["HOME"]))):
            config.write_text(f"local:\n  allowed_host_paths: ['{bad}']\n")
            r = styx("exec", cluster, task)
            assert r.returncode == 2 and "invalid-config" in r.stderr, (bad, r.stderr)
    finally:
        config.unlink(missing_ok=True)


# --- 2. no secret is stored or printed ------------------------------------------------------------


def _files_holding(root: Path, needles: list[bytes]) -> list[str]:
    found = []
    for dirpath, _, names in os.walk(root):
        for name in names:
            p = Path(dirpath) / name
            try:
                data = p.read_bytes()
            except OSError:
                continue
            found += [f"{p}: {n!r}" for n in needles if n in data]
    return found


def test_secrets_are_never_stored_or_printed(styx: Styx, cluster: str, tmp_path: Path) -> None:
    flag, field = f"flag-{secrets.token_hex(8)}", f"yaml-{secrets.token_hex(8)}"
    task = write(  # the job proves it got both values without the script naming them
        tmp_path / "s.yaml",
        f"secrets:\n  FROM_YAML: {field}\n  FROM_FLAG: null\n"
        'run: |\n  printf %s "$FROM_FLAG/$FROM_YAML" | sha256sum\n',
    )
    r = styx("launch", "-c", cluster, "-y", task, "--secret", f"FROM_FLAG={flag}")
    assert r.returncode == 0, r.stderr
    assert hashlib.sha256(f"{flag}/{field}".encode()).hexdigest() in r.stdout
    job = max(jobs(styx, cluster))
    outputs = [r.stdout + r.stderr]
    for args in (
        ("status", "--json"),
        ("status",),
        ("queue", cluster),
        ("queue", cluster, "--json"),
        ("logs", cluster, str(job), "--no-follow"),
        ("launch", "--dryrun", task, "--secret", f"FROM_FLAG={flag}"),
    ):
        res = styx(*args)
        outputs.append(res.stdout + res.stderr)
    last_use = {c["name"]: c["last_use"] for c in json.loads(outputs[1])}[cluster]
    assert "FROM_FLAG=<redacted>" in last_use
    for text in outputs:
        assert flag not in text and field not in text, text
    needles = [flag.encode(), field.encode()]
    assert _files_holding(styx.home, needles) == []
    ray_folder = Path(ray_private_dir(os.path.realpath(styx.home / "clusters" / cluster / "agent")))
    assert _files_holding(ray_folder, needles) == []


def test_styx_files_are_private(styx: Styx, cluster: str) -> None:
    node_homes = {styx.home / "clusters" / c / "home" for c in os.listdir(styx.home / "clusters")}
    assert (styx.home / "state.db").stat().st_mode & 0o777 == 0o600
    loose = []
    for dirpath, dirnames, names in os.walk(styx.home):
        here = Path(dirpath)
        if here in node_homes:  # the user's own files, synced: their modes are theirs
            dirnames[:] = []
            continue
        if here.stat().st_mode & 0o077:
            loose.append(f"{here}/ {oct(here.stat().st_mode & 0o777)}")
        for name in names:
            p = here / name
            if not p.is_symlink() and p.stat().st_mode & 0o077:
                loose.append(f"{p} {oct(p.stat().st_mode & 0o777)}")
    assert loose == []
    ray_folder = ray_private_dir(os.path.realpath(styx.home / "clusters" / cluster / "agent"))
    assert os.stat(ray_folder).st_mode & 0o777 == 0o700


# --- 3. no port opens beyond loopback ---------------------------------------------------------


def _listeners() -> list[tuple[str, int]]:
    """(local address, pid) of every listening TCP socket."""
    out = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, check=True).stdout
    found = []
    for line in out.splitlines():
        cols = line.split()
        addr = cols[3].rsplit(":", 1)[0]
        for part in line.split("pid=")[1:]:
            found.append((addr, int(part.split(",")[0])))
    return found


def test_every_port_of_a_local_cluster_is_on_loopback(styx: Styx, cluster: str) -> None:
    r = styx("exec", cluster, "echo warm")  # workers up too
    assert r.returncode == 0, r.stderr
    pids = cluster_pids(styx, cluster)
    mine = [(addr, pid) for addr, pid in _listeners() if pid in pids]
    assert len(mine) >= 3, mine  # the GCS, the raylet's two, the workers...
    loopback = {"127.0.0.1", "[::ffff:127.0.0.1]", "[::1]"}
    assert [m for m in mine if m[0] not in loopback] == []
    sock = styx.home / "clusters" / cluster / "agent" / "agent.sock"
    assert sock.is_socket() and sock.stat().st_mode & 0o777 == 0o600


# --- 4. a dead runtime never hangs the client --------------------------------------------------


def test_a_dead_ray_is_reported_fails_its_jobs_fast_and_start_repairs_it(
    styx: Styx, cluster: str
) -> None:
    r = styx("exec", cluster, "-d", "sleep 300")
    assert r.returncode == 0, r.stderr
    running = max(jobs(styx, cluster))
    wait_for(lambda: jobs(styx, cluster)[running]["status"] == "RUNNING", 30, "the job to run")
    gcs = [
        p
        for p in cluster_pids(styx, cluster)
        if Path(f"/proc/{p}/comm").read_text().strip() == "gcs_server"
    ]
    assert len(gcs) == 1, gcs
    os.kill(gcs[0], signal.SIGKILL)
    wait_for(
        lambda: jobs(styx, cluster)[running]["status"] == "FAILED_DRIVER", 30, "the job to fail"
    )
    assert "Ray runtime is down" in (jobs(styx, cluster)[running]["failure_reason"] or "")
    started = time.monotonic()
    r = styx("exec", cluster, "echo x", timeout=60)
    assert time.monotonic() - started < 30
    assert r.returncode == 7 and "runtime-down" in r.stderr and "styx start" in r.stderr, r.stderr
    r = styx("status", "-r")
    assert statuses(styx)[cluster] == "DEGRADED"
    assert "runtime is down" in r.stdout, r.stdout
    r = styx("start", cluster, "-y")
    assert r.returncode == 0, r.stderr
    r = styx("exec", cluster, "echo repaired")
    assert r.returncode == 0 and "repaired" in r.stdout, r.stderr
    styx("status", "-r", check=True)
    assert statuses(styx)[cluster] == "UP"


# --- 8. large and odd inputs ------------------------------------------------------------------


def test_big_scripts_and_envs_work_and_impossible_ones_are_refused_at_parse_time(
    styx: Styx, cluster: str, tmp_path: Path
) -> None:
    body = "".join(f": line {i} of a long script\n" for i in range(12000))  # > 300 KiB
    big = write(
        tmp_path / "big.yaml",
        "run: |\n" + "".join("  " + ln + "\n" for ln in body.splitlines()) + "  echo big-ok\n",
    )
    assert os.path.getsize(big) > 300 * 1024
    r = styx("exec", cluster, big)
    assert r.returncode == 0 and "big-ok" in r.stdout, r.stderr
    value = "v" * 100_000
    r = styx("exec", cluster, "--env", f"BIG={value}", 'echo "len=${#BIG}"')
    assert r.returncode == 0 and "len=100000" in r.stdout, r.stderr
    huge = "v" * 200_000  # more than Linux passes in one environment variable
    env_file = write(tmp_path / "big.env", f"BIG={huge}\n")
    yaml_env = write(tmp_path / "env.yaml", f"envs:\n  BIG: {huge}\nrun: echo never\n")
    for args in (
        ("exec", cluster, "--env-file", env_file, "echo never"),
        ("exec", cluster, yaml_env),
    ):
        r = styx(*args)
        assert r.returncode == 2 and "invalid-env-value" in r.stderr and "128 KiB" in r.stderr
    nul = write(tmp_path / "nul.yaml", 'envs:\n  A: "x\\0y"\nrun: echo never\n')
    for args in (("exec", cluster, nul), ("launch", "-c", "fresh", "-y", nul), ("validate", nul)):
        r = styx(*args)
        assert r.returncode == 2 and "invalid-env-value" in r.stdout + r.stderr, (args, r.stderr)
    assert "fresh" not in statuses(styx)


# --- 9. checks that come before anything runs ------------------------------------------------------


def test_bad_requests_are_refused_up_front_with_their_codes(
    styx: Styx, cluster: str, tmp_path: Path
) -> None:
    r = styx("exec", cluster, "--memory", "99999", "echo never")
    assert r.returncode == 6 and "resources-unavailable" in r.stderr and "memory" in r.stderr
    r = styx("exec", cluster, "--gpus", "A100:8", "echo never")
    assert r.returncode == 6 and "resources-unavailable" in r.stderr and "A100" in r.stderr
    r = styx("launch", "-c", cluster, "-y", "--memory", "99999", HELLO)
    assert r.returncode == 6 and "resources-unavailable" in r.stderr
    missing = write(tmp_path / "w.yaml", f"workdir: {tmp_path / 'nope'}\nrun: echo never\n")
    r = styx("launch", "-c", "fresh", "-y", missing)
    assert r.returncode == 2 and "workdir-not-found" in r.stderr
    src = write(tmp_path / "m.yaml", f"file_mounts:\n  ~/x: {tmp_path / 'nope'}\nrun: echo no\n")
    r = styx("launch", "-c", "fresh", "-y", src)
    assert r.returncode == 2 and "mount-source-not-found" in r.stderr
    assert "fresh" not in statuses(styx) and not (styx.home / "clusters" / "fresh").exists()
    for args in (
        ("logs", cluster, "99999999999999999999999"),
        ("logs", cluster, "0"),
        ("cancel", cluster, "-5"),
        ("launch", "-c", cluster, "-i", "-5", HELLO),
        ("autostop", cluster, "-i", "-1"),
    ):
        r = styx(*args)
        assert r.returncode == 2 and "invalid-usage" in r.stderr, (args, r.stderr)
    afile = tmp_path / "afile"
    afile.write_text("x")
    for home in (afile, afile / "sub"):
        r = Styx(home, extra_env={"HOME": str(tmp_path)})("status")
        assert r.returncode == 2 and "styx-home-unusable" in r.stderr, r.stderr


# --- 5 and 6. a lost database, kills at bad moments: nothing is orphaned or leaked -------------


def test_a_lost_state_database_orphans_nothing(tmp_path: Path) -> None:
    before = leaks.snapshot()
    styx = Styx(tmp_path / "home")
    assert styx("launch", HELLO, "-c", "k1", "-y").returncode == 0
    assert styx("launch", HELLO, "-c", "k2", "-y").returncode == 0
    pids = cluster_pids(styx, "k1")
    assert pids
    (styx.home / "state.db").write_bytes(b"")  # `: > state.db`
    r = styx("status")
    assert r.returncode == 0
    assert "'k1' is not in the state database" in r.stderr and "styx down k1" in r.stderr
    assert "'k2' is not in the state database" in r.stderr
    # Relaunching one under its old name takes its folder over, leaving nothing of the old one.
    r = styx("launch", HELLO, "-c", "k2", "-y")
    assert r.returncode == 0, r.stderr
    r = styx("down", "k1", "-y")
    assert r.returncode == 0, r.stderr
    wait_for(lambda: not (pids & cluster_pids(styx, "k1")), 15, "k1's processes to end")
    assert not (styx.home / "clusters" / "k1").exists()
    assert "k1" not in styx("status").stderr
    assert styx("down", "--all", "-y").returncode == 0
    assert_no_leaks(before, styx.home)


def _kill(pids: set[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def test_relaunch_after_kills_leaves_nothing_after_down(tmp_path: Path) -> None:
    before = leaks.snapshot()
    styx = Styx(tmp_path / "home")
    # kill -9 of a launch just after provisioning, then a relaunch.
    launch = subprocess.Popen(
        [sys.executable, "-m", "styx.cli.main", "launch", HELLO, "-c", "kl", "-y"],
        env=styx.env(),
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for(lambda: (styx.home / "clusters" / "kl" / "agent").exists(), 60, "provisioning")
    time.sleep(3)
    launch.kill()
    launch.wait()
    assert styx("launch", HELLO, "-c", "kl", "-y").returncode == 0
    # kill -9 of both the supervisor and the agent, then a relaunch.
    root = styx.home / "clusters" / "kl" / "agent"
    _kill({int((root / "supervisor.pid").read_text()), int((root / "agent.pid").read_text())})
    r = styx("launch", HELLO, "-c", "kl", "-y")
    assert r.returncode == 0, r.stderr
    # A lost database, then a relaunch under the same name: a second Ray on the same folder.
    (styx.home / "state.db").write_bytes(b"")
    assert styx("launch", HELLO, "-c", "kl", "-y").returncode == 0
    assert styx("down", "kl", "-y").returncode == 0
    assert not (styx.home / "clusters" / "kl").exists()
    assert_no_leaks(before, styx.home)


# --- 7. a full disk ends the job, with a code ------------------------------------------------------


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tiny tmpfs needs root")
def test_a_full_disk_fails_the_job_and_the_client_gets_a_code(tmp_path: Path) -> None:
    before = leaks.snapshot()
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)], check=True)
    try:
        styx = Styx(mnt / "home")
        assert styx("launch", HELLO, "-c", "df1", "-y").returncode == 0
        big = write(
            tmp_path / "out.yaml",
            "run: |\n  python3 -c \"import sys; [sys.stdout.write('x' * 1000 + '\\n') for _ in range(5000)]\"\n  echo done\n",
        )
        r = styx("exec", "df1", big, timeout=120)
        assert r.returncode == 7 and "agent-storage-failed" in r.stderr, r.stderr
        assert "No space left" in r.stderr or "disk is full" in r.stderr, r.stderr
        q = styx("queue", "df1")
        assert "RUNNING" not in q.stdout and "FAILED" in q.stdout, q.stdout
        r = styx("cancel", "df1", "--all", "-y")
        assert "No unfinished job" in r.stdout, r.stdout
        for log in (mnt / "home" / "clusters" / "df1" / "agent" / "logs").glob("*/run.log"):
            log.unlink()  # room again, so that `down` can record it
        assert styx("down", "df1", "-y").returncode == 0
    finally:
        if (mnt / "home" / "clusters" / "df1").exists():  # a failure above: leave nothing
            styx("down", "df1", "-y")
        subprocess.run(["umount", "-l", str(mnt)], check=False)
    assert_no_leaks(before, mnt)


# --- 2, on PostgreSQL and through managed jobs ---------------------------------------------------


@pytest.mark.postgres
def test_secrets_stay_out_of_postgresql_and_managed_jobs(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    import sqlalchemy as sa

    url = request.getfixturevalue("pg_schema_url")
    before = leaks.snapshot()
    styx = Styx(
        tmp_path / "home",
        extra_env={
            "STYX_DB_URL": url,
            "STYX_JOBS_POLL_INTERVAL": "0.5",
            "STYX_JOBS_IDLE_EXIT": "2",
        },
    )
    flag, field = f"flag-{secrets.token_hex(8)}", f"yaml-{secrets.token_hex(8)}"
    task = write(
        tmp_path / "s.yaml",
        f"secrets:\n  FROM_YAML: {field}\n  FROM_FLAG: null\n"
        'run: |\n  printf %s "$FROM_FLAG/$FROM_YAML" | sha256sum\n',
    )
    digest = hashlib.sha256(f"{flag}/{field}".encode()).hexdigest()
    r = styx("launch", "-c", "pg1", "-y", task, "--secret", f"FROM_FLAG={flag}")
    assert r.returncode == 0 and digest in r.stdout, r.stderr
    outputs = [r.stdout + r.stderr]
    r = styx("jobs", "launch", "-y", task, "--secret", f"FROM_FLAG={flag}")
    assert r.returncode == 0, r.stderr
    outputs.append(r.stdout + r.stderr)

    wait_for(lambda: "SUCCEEDED" in styx("jobs", "queue").stdout, 120, "the managed job")
    for args in (
        ("jobs", "queue"),
        ("jobs", "logs", "1"),
        ("status", "--json"),
        ("queue", "pg1"),
        ("logs", "pg1", "1", "--no-follow"),
    ):
        res = styx(*args)
        outputs.append(res.stdout + res.stderr)
    assert digest in outputs[-4], outputs[-4]  # the managed job's own output, saved and shown
    for text in outputs:
        assert flag not in text and field not in text, text
    assert _files_holding(styx.home, [flag.encode(), field.encode()]) == []
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            for table in sa.inspect(conn).get_table_names():
                for row in conn.execute(sa.text(f'SELECT * FROM "{table}"')):
                    text = " ".join(str(v) for v in row)
                    assert flag not in text and field not in text, (table, text)
    finally:
        engine.dispose()
    assert styx("down", "--all", "-y").returncode == 0
    assert_no_leaks(before, styx.home)
