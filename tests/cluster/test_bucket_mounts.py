"""Buckets on the nodes (styx.cluster.bucket_mounts): rclone's flags per mode, the config file,
and the node scripts run for real on this machine through LocalRunner, against rclone's
``local`` backend (a folder stands in for the bucket, so no store is needed): COPY, the exit
codes and what they become, and MOUNT / MOUNT_CACHED through FUSE, with pending writes seen
by ``states()`` and waited for by ``release()``."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import shutil
import signal
import stat
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

import pytest

from styx.cluster import bucket_mounts as bm
from styx.cluster.bucket_mounts import NodeMount, config_text, flags_for
from styx.cluster.runner import LocalRunner, RunResult
from styx.errors import NotSupportedError, RemoteError
from styx.spec.sections import STORAGE_CONFIG

RCLONE = shutil.which("rclone")
needs_rclone = pytest.mark.skipif(RCLONE is None, reason="rclone is not installed here")
REMOTE = "loc"


def _fuse_problem() -> str | None:
    if RCLONE is None:
        return "rclone is not installed here"
    if not os.path.exists("/dev/fuse"):
        return "no /dev/fuse on this machine"
    if shutil.which("fusermount3") is None and shutil.which("fusermount") is None:
        return "no fusermount3 / fusermount on this machine"
    try:
        fd = os.open("/dev/fuse", os.O_RDWR)
    except OSError as e:
        return f"/dev/fuse cannot be opened here ({e.strerror})"
    os.close(fd)
    return None


FUSE_PROBLEM = _fuse_problem()
needs_fuse = pytest.mark.skipif(FUSE_PROBLEM is not None, reason=f"no FUSE: {FUSE_PROBLEM}")
#: The script's FUSE checks (``/dev/fuse`` there, a fusermount) pass, mounting or not.
HAS_FUSERMOUNT = bool(shutil.which("fusermount3") or shutil.which("fusermount"))
needs_fuse_checks = pytest.mark.skipif(
    not (os.path.exists("/dev/fuse") and HAS_FUSERMOUNT),
    reason="the node script stops before this check without /dev/fuse and a fusermount",
)


def pairs(flags: Sequence[str]) -> dict[str, str | None]:
    """``--flag value`` pairs (``None`` for a flag without a value); a flag given twice fails."""
    out: dict[str, str | None] = {}
    i = 0
    while i < len(flags):
        flag = flags[i]
        assert flag.startswith("--") and flag not in out, flags
        value = flags[i + 1] if i + 1 < len(flags) and not flags[i + 1].startswith("--") else None
        out[flag] = value
        i += 1 if value is None else 2
    return out


# --- flags -------------------------------------------------------------------------------------


def test_copy_flags_are_parallel_transfers_only() -> None:
    flags = pairs(flags_for("COPY", [("transfers", "2"), ("vfs_write_back", "9s")], True))
    assert flags["--transfers"] == "16" and flags["--checkers"] == "16"
    assert "--multi-thread-streams" in flags
    assert not any(f.startswith("--vfs") for f in flags) and "--read-only" not in flags


def test_mount_streams_with_no_cache() -> None:
    flags = pairs(flags_for("MOUNT", [("transfers", "8"), ("vfs_write_back", "9s")], False))
    assert flags["--vfs-cache-mode"] == "off" and "--vfs-read-chunk-size" in flags
    assert "--vfs-write-back" not in flags and "--transfers" not in flags  # mount_cached's only
    assert "--read-only" not in flags
    assert "--dir-cache-time" in flags and flags["--poll-interval"] == "0"
    assert pairs(flags_for("MOUNT", [], True))["--read-only"] is None


def test_mount_cached_defaults() -> None:
    flags = pairs(flags_for("MOUNT_CACHED", [], False))
    assert flags["--vfs-cache-mode"] == "full"
    assert flags["--vfs-write-back"] == bm.WRITE_BACK == "1s"
    assert flags["--transfers"] == "4" and "--read-only" not in flags


def test_mount_cached_maps_the_task_options() -> None:
    options = [
        ("buffer_size", "32M"),
        ("transfers", "8"),
        ("vfs_cache_max_age", "1h"),
        ("vfs_cache_max_size", "10G"),
        ("vfs_read_ahead", "128M"),
        ("vfs_read_chunk_size", "8M"),
        ("vfs_read_chunk_streams", "4"),
        ("vfs_write_back", "30s"),
        ("not_an_option", "x"),  # not rclone's: dropped, never passed on
    ]
    flags = flags_for("MOUNT_CACHED", options, True)
    got = pairs(flags)  # also: no flag twice
    assert got["--vfs-cache-mode"] == "full" and got["--vfs-write-back"] == "30s"
    assert got["--transfers"] == "8" and got["--buffer-size"] == "32M"
    assert got["--vfs-cache-max-size"] == "10G" and got["--vfs-cache-max-age"] == "1h"
    assert got["--vfs-read-ahead"] == "128M" and got["--vfs-read-chunk-size"] == "8M"
    assert got["--vfs-read-chunk-streams"] == "4"
    assert flags[-1] == "--read-only"
    assert not any("not_an_option" in f or "not-an-option" in f for f in flags)
    assert flags_for("MOUNT_CACHED", list(reversed(options)), True) == flags  # order-free


def test_every_mount_cached_option_of_the_schema_becomes_a_flag() -> None:
    schema = STORAGE_CONFIG.fields["mount_cached"].fields  # type: ignore[attr-defined]
    for key in schema:
        if key == "read_only":
            continue
        flag = "--" + key.replace("_", "-")
        assert pairs(flags_for("MOUNT_CACHED", [(key, "7")], False))[flag] == "7", key


# --- the config file --------------------------------------------------------------------------


def test_config_text_is_one_ini_section_per_remote() -> None:
    text = config_text(
        {"s3": {"type": "s3", "provider": "AWS"}, "gcs": {"type": "google cloud storage"}}
    )
    assert text == "[s3]\ntype = s3\nprovider = AWS\n\n[gcs]\ntype = google cloud storage\n"
    assert config_text({}) == ""


SPECIAL = {
    "key": "ab+/cd==",  # base64, as Azure account keys are
    "secret": "wJalr/K7MDENG+bPxRfi",
    "equals": "x = y",
    "hash": "a#b ;c",
    "percent": "%HOME%",
    "quotes": "\"q\" 'r'",
    "unicode": "ключ",
}


@needs_rclone
def test_rclone_reads_values_with_special_characters_back(tmp_path: Path) -> None:
    conf = tmp_path / "rclone.conf"
    conf.write_text(config_text({REMOTE: {"type": "local", **SPECIAL}, "two": {"type": "local"}}))
    out = subprocess.run(
        [str(RCLONE), "--config", str(conf), "config", "dump"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    dumped = json.loads(out.stdout)
    assert dumped == {REMOTE: {"type": "local", **SPECIAL}, "two": {"type": "local"}}


def test_node_mount_id_is_stable_per_destination_and_source() -> None:
    """Another bucket at the same folder gets another id (so another cache: never the
    pending writes of the bucket mounted there before); mode and flags do not count."""
    a = NodeMount("/data", "COPY", "s3:bucket/x")
    b = NodeMount("/data", "MOUNT_CACHED", "s3:bucket/x", ("--read-only",))
    assert a.id == b.id == hashlib.sha256(b"/data\0s3:bucket/x").hexdigest()[:12]
    assert NodeMount("/data", "COPY", "gcs:other").id != a.id
    assert len(a.id) == 12 and all(c in "0123456789abcdef" for c in a.id)
    assert NodeMount("/data2", "COPY", "s3:bucket/x").id != a.id
    assert NodeMount("/data", "COPY", "s3:bucket/x").id == a.id  # the same in every process


# --- the node scripts, for real ---------------------------------------------------------------


class PathRunner(LocalRunner):
    """A LocalRunner whose commands see only ``path`` as PATH."""

    def __init__(self, path: Path, node_name: str = "n1") -> None:
        super().__init__(node_name)
        self.path = str(path)

    def run(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        input_text: str | None = None,
        timeout: float | None = None,
    ) -> RunResult:
        return super().run(
            argv,
            env={**(env or {}), "PATH": self.path},
            cwd=cwd,
            input_text=input_text,
            timeout=timeout,
        )


def tools(folder: Path, *names: str) -> Path:
    """A folder holding links to just these programs of this machine."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        found = shutil.which(name)
        if found is not None:
            (folder / name).symlink_to(found)
    return folder


#: What the node script needs besides rclone and fusermount.
SCRIPT_TOOLS = ("sh", "mkdir", "timeout", "grep", "tail", "dirname", "cat", "ls", "rm")


def _mounts_under(prefix: str) -> list[str]:
    out = []
    with open("/proc/mounts") as f:
        for line in f:
            point = line.split()[1].replace("\\040", " ")
            if point.startswith(prefix):
                out.append(point)
    return out


def _processes_naming(text: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(text.encode() in a for a in argv):
            pids.append(int(entry.name))
    return pids


@dataclasses.dataclass
class Node:
    """One node on this machine: the cluster's ROOT, a folder standing in for the bucket."""

    tmp: Path
    root: Path
    bucket: Path
    runner: LocalRunner

    @property
    def conf(self) -> Path:
        return self.root / bm.STORAGE_DIR / "rclone.conf"

    def source(self, sub: str = "") -> str:
        return f"{REMOTE}:{self.bucket / sub if sub else self.bucket}"

    def mount(
        self,
        dest: Path,
        mode: str,
        sub: str = "",
        *,
        options: Sequence[tuple[str, str]] = (),
        read_only: bool = False,
        runner: LocalRunner | None = None,
    ) -> str:
        """``mount_on_node`` of the bucket folder (or ``sub`` in it) at ``dest``."""
        m = NodeMount(str(dest), mode, self.source(sub), flags_for(mode, options, read_only))
        return bm.mount_on_node(runner or self.runner, str(self.root), m, timeout=120)


def _cleanup(tmp: Path, conf: Path) -> None:
    for point in reversed(_mounts_under(str(tmp))):
        for tool in ("fusermount3", "fusermount"):
            if shutil.which(tool):
                subprocess.run([tool, "-uz", point], capture_output=True, check=False)
                break
    pids = _processes_naming(str(conf))
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 5
    while pids and time.monotonic() < deadline:
        pids = [p for p in pids if Path(f"/proc/{p}").exists()]
        time.sleep(0.1)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture
def node(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Node]:
    """ROOT with the rclone config written (a ``local`` remote), a bucket folder with a few
    objects, and a home; every mount and rclone process left is ended afterwards."""
    if RCLONE is None:
        pytest.skip("rclone is not installed here")
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    bucket = tmp_path / "bucket"
    (bucket / "sub" / "deep").mkdir(parents=True)
    (bucket / "top.txt").write_text("top\n")
    (bucket / "sub" / "a.txt").write_text("a\n")
    (bucket / "sub" / "deep" / "b.bin").write_bytes(bytes(range(256)) * 64)
    n = Node(tmp_path, tmp_path / "root", bucket, LocalRunner("n1"))
    bm.write_config(n.runner, str(n.root), config_text({REMOTE: {"type": "local"}}))
    try:
        yield n
    finally:
        _cleanup(tmp_path, n.conf)
    assert _mounts_under(str(tmp_path)) == [], "a mount was left behind"


def wait_for(what: str, check: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def test_config_is_0600_in_a_0700_folder(node: Node) -> None:
    folder = node.conf.parent
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE(node.conf.stat().st_mode) == 0o600
    assert node.conf.read_text() == f"[{REMOTE}]\ntype = local\n"
    folder.chmod(0o755)  # written again: the folder is closed again, the text replaced
    bm.write_config(node.runner, str(node.root), config_text({"x": {"type": "local"}}))
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE(node.conf.stat().st_mode) == 0o600
    assert node.conf.read_text() == "[x]\ntype = local\n"


def test_ensure_rclone_keeps_the_nodes_own(node: Node) -> None:
    bm.ensure_rclone(node.runner, str(node.root))
    assert not (node.root / "bin").exists()


def test_ensure_rclone_brings_this_machines_rclone(node: Node) -> None:
    runner = PathRunner(tools(node.tmp / "path", "sh", "uname", "mkdir", "rsync"))
    bm.ensure_rclone(runner, str(node.root))
    brought = node.root / "bin" / "rclone"
    assert brought.is_file() and os.access(brought, os.X_OK)
    bm.ensure_rclone(runner, str(node.root))  # now found there: nothing to do


def test_ensure_rclone_without_one_to_bring(node: Node, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bm, "_rclone_here", lambda: None)
    runner = PathRunner(tools(node.tmp / "path", "sh", "uname"))
    with pytest.raises(NotSupportedError) as info:
        bm.ensure_rclone(runner, str(node.root))
    assert info.value.code == "mount-tool-missing" and "n1" in info.value.message


def test_copy_lands_every_file_in_nested_folders(node: Node) -> None:
    dest = node.tmp / "node" / "data" / "in"  # its parents do not exist yet
    assert node.mount(dest, "COPY") == "copied"
    assert (dest / "top.txt").read_text() == "top\n" and (
        dest / "sub" / "a.txt"
    ).read_text() == "a\n"
    assert (dest / "sub" / "deep" / "b.bin").read_bytes() == bytes(range(256)) * 64
    assert _mounts_under(str(node.tmp)) == []
    assert node.mount(dest, "COPY") == "copied"  # again: the same files, no error


def test_copy_of_a_prefix_and_of_one_object_and_to_home(node: Node) -> None:
    dest = node.tmp / "prefix"
    node.mount(dest, "COPY", "sub")
    assert sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*")) == [
        "a.txt",
        "deep",
        "deep/b.bin",
    ]
    one = node.tmp / "one" / "a-copy.txt"
    node.mount(one, "COPY", "sub/a.txt")
    assert one.read_text() == "a\n"
    node.mount(Path("~/inhome"), "COPY", "sub")  # ~ is the node's HOME
    assert (node.tmp / "home" / "inhome" / "a.txt").read_text() == "a\n"


def test_a_missing_source_is_unreachable(node: Node) -> None:
    dest = node.tmp / "never"
    for mode in ("COPY", "MOUNT"):
        with pytest.raises(RemoteError) as info:
            node.mount(dest, mode, "no-such-folder")
        err = info.value
        assert err.code == "bucket-mount-failed" and "n1" in err.message
        assert "no-such-folder" in err.message and str(dest) in err.message
    assert not dest.exists()


def test_a_failed_copy(node: Node) -> None:
    (node.tmp / "a-file").write_text("x")
    dest = node.tmp / "a-file" / "under"  # its parent is a file: nothing can land there
    with pytest.raises(RemoteError) as info:
        node.mount(dest, "COPY")
    err = info.value
    assert err.code == "bucket-mount-failed" and err.message.startswith("Copying ")
    assert "n1" in err.message and (node.tmp / "a-file").read_text() == "x"


@needs_fuse_checks
def test_a_failed_mount_leaves_no_record(node: Node) -> None:
    dest = node.tmp / "mnt"
    m = NodeMount(str(dest), "MOUNT", node.source(), ("--vfs-cache-mode", "bogus"))
    with pytest.raises(RemoteError) as info:
        bm.mount_on_node(node.runner, str(node.root), m, timeout=60)
    assert info.value.code == "bucket-mount-failed"
    assert info.value.message.startswith("Mounting ") and "n1" in info.value.message
    assert not (node.root / "storage" / "mounts" / m.id).exists()
    assert bm.states(node.runner, str(node.root)) == [] and _mounts_under(str(node.tmp)) == []


def test_no_rclone_on_the_node(node: Node) -> None:
    runner = PathRunner(tools(node.tmp / "path", "sh"))  # no rclone, and none in ROOT/bin
    assert not (node.root / "bin" / "rclone").exists()
    with pytest.raises(NotSupportedError) as info:
        node.mount(node.tmp / "d", "COPY", runner=runner)
    assert info.value.code == "mount-tool-missing" and "n1" in info.value.message
    assert not (node.tmp / "d").exists()


def test_the_rclone_in_root_bin_is_used(node: Node) -> None:
    runner = PathRunner(tools(node.tmp / "path", *SCRIPT_TOOLS))
    (node.root / "bin").mkdir()
    (node.root / "bin" / "rclone").symlink_to(str(RCLONE))
    dest = node.tmp / "d"
    assert node.mount(dest, "COPY", runner=runner) == "copied"
    assert (dest / "top.txt").read_text() == "top\n"


@pytest.mark.skipif(not os.path.exists("/dev/fuse"), reason="the script stops at /dev/fuse first")
def test_no_fusermount_on_the_node(node: Node) -> None:
    runner = PathRunner(tools(node.tmp / "path", *SCRIPT_TOOLS, "rclone"))
    with pytest.raises(NotSupportedError) as info:
        node.mount(node.tmp / "d", "MOUNT", runner=runner)
    assert info.value.code == "mount-tool-missing" and "fusermount" in info.value.message
    assert "COPY" in info.value.hint


@needs_fuse_checks
def test_a_folder_with_files_is_not_mounted_over(node: Node) -> None:
    dest = node.tmp / "busy"
    dest.mkdir()
    (dest / "mine.txt").write_text("mine\n")
    with pytest.raises(RemoteError) as info:
        node.mount(dest, "MOUNT")
    assert info.value.code == "mount-destination-not-empty"
    assert [p.name for p in dest.iterdir()] == ["mine.txt"]
    assert _mounts_under(str(node.tmp)) == []
    mark = (
        node.root / "storage" / "mounts" / f"{NodeMount(str(dest), 'MOUNT', node.source()).id}.dest"
    )
    assert not mark.exists() and bm.states(node.runner, str(node.root)) == []


def _released(node: Node) -> None:
    assert _mounts_under(str(node.tmp)) == []
    assert _processes_naming(str(node.conf)) == []
    assert bm.states(node.runner, str(node.root)) == []


@needs_fuse
def test_mount_reads_through_and_release_unmounts(node: Node) -> None:
    dest = node.tmp / "mnt"
    assert node.mount(dest, "MOUNT") == "mounted"
    assert _mounts_under(str(node.tmp)) == [str(dest)]
    assert (dest / "sub" / "a.txt").read_text() == "a\n"
    assert (dest / "sub" / "deep" / "b.bin").read_bytes() == bytes(range(256)) * 64
    (dest / "written.txt").write_text("through\n")  # no cache: straight to the bucket
    assert (node.bucket / "written.txt").read_text() == "through\n"
    (state,) = bm.states(node.runner, str(node.root))
    assert state == bm.MountState("n1", str(dest), True, 0, 0)
    assert node.mount(dest, "MOUNT") == "kept"  # the same source: left as it is
    assert len(_processes_naming(str(node.conf))) >= 1
    assert bm.release(node.runner, str(node.root), wait_s=30) == 0
    _released(node)
    assert (node.bucket / "written.txt").exists() and not any(dest.iterdir())


@needs_fuse
def test_read_only_mount_refuses_writes(node: Node) -> None:
    dest = node.tmp / "ro"
    node.mount(dest, "MOUNT", read_only=True)
    assert (dest / "top.txt").read_text() == "top\n"
    with pytest.raises(OSError):
        (dest / "new.txt").write_text("x")
    assert not (node.bucket / "new.txt").exists()
    assert bm.release(node.runner, str(node.root), wait_s=30) == 0
    _released(node)


@needs_fuse
def test_mount_cached_writes_land_after_the_write_back(node: Node) -> None:
    dest = node.tmp / "cached"
    options = [("vfs_cache_max_size", "1G"), ("buffer_size", "8M"), ("transfers", "2")]
    assert node.mount(dest, "MOUNT_CACHED", options=options) == "mounted"
    assert (dest / "top.txt").read_text() == "top\n"
    (dest / "out").mkdir()
    (dest / "out" / "result.txt").write_text("done\n")
    wait_for("the write-back", lambda: (node.bucket / "out" / "result.txt").exists())
    wait_for(
        "the upload to end",
        lambda: (
            (node.bucket / "out" / "result.txt").read_text() == "done\n"
            and bm.states(node.runner, str(node.root))[0].pending_files == 0
        ),
    )
    assert bm.release(node.runner, str(node.root), wait_s=30) == 0
    _released(node)


@needs_fuse
def test_pending_writes_are_seen_and_waited_for(node: Node) -> None:
    dest = node.tmp / "cached"
    node.mount(dest, "MOUNT_CACHED", options=[("vfs_write_back", "8s")])
    payload = b"x" * 5000
    (dest / "ckpt.bin").write_bytes(payload)
    (state,) = bm.states(node.runner, str(node.root))
    assert state.mounted and state.dest == str(dest) and state.reachable
    assert (state.pending_files, state.pending_bytes) == (1, len(payload))
    assert not (node.bucket / "ckpt.bin").exists()  # still only in the cache
    started = time.monotonic()
    assert bm.release(node.runner, str(node.root), wait_s=60) == 0
    assert 3 < time.monotonic() - started < 40  # it waited for the upload, not the deadline
    assert (node.bucket / "ckpt.bin").read_bytes() == payload  # uploaded before the unmount
    _released(node)


@needs_fuse
def test_release_at_the_deadline_reports_what_is_still_pending(node: Node) -> None:
    dest = node.tmp / "cached"
    node.mount(dest, "MOUNT_CACHED", options=[("vfs_write_back", "60s")])
    (dest / "late.txt").write_text("late\n")
    assert bm.release(node.runner, str(node.root), wait_s=1) == 1
    _released(node)
    assert not (node.bucket / "late.txt").exists()
    # The cache outlives the process: mounted again, the pending write is uploaded.
    node.mount(dest, "MOUNT_CACHED")
    wait_for("the pending write", lambda: (node.bucket / "late.txt").exists(), timeout=20)
    wait_for("the upload", lambda: (node.bucket / "late.txt").read_text() == "late\n")
    assert bm.release(node.runner, str(node.root), wait_s=30) == 0
    _released(node)


@needs_fuse
def test_a_new_source_at_the_same_destination_is_mounted_again(node: Node) -> None:
    dest = node.tmp / "mnt"
    node.mount(dest, "MOUNT")
    assert node.mount(dest, "MOUNT", "sub") == "mounted"
    assert sorted(p.name for p in dest.iterdir()) == ["a.txt", "deep"]
    assert len(bm.states(node.runner, str(node.root))) == 1
    assert bm.release(node.runner, str(node.root), wait_s=30) == 0
    _released(node)


@needs_fuse
def test_a_new_mode_at_the_same_destination_is_mounted_again(node: Node) -> None:
    dest = node.tmp / "mnt"
    node.mount(dest, "MOUNT")
    try:
        assert node.mount(dest, "MOUNT", read_only=True) == "mounted"
        with pytest.raises(OSError):
            (dest / "new.txt").write_text("x")
        assert node.mount(dest, "MOUNT_CACHED") == "mounted"
    finally:
        bm.release(node.runner, str(node.root), wait_s=30)


@needs_fuse
def test_apply_all_on_a_node(node: Node) -> None:
    seen: list[str] = []
    mounts = [
        NodeMount(str(node.tmp / "c"), "COPY", node.source("sub"), flags_for("COPY", [], False)),
        NodeMount(str(node.tmp / "m"), "MOUNT", node.source(), flags_for("MOUNT", [], True)),
    ]
    text = config_text({REMOTE: {"type": "local"}})
    bm.apply_all([node.runner], str(node.root), text, mounts, on_node=seen.append)
    assert seen == ["n1"] and (node.tmp / "c" / "a.txt").read_text() == "a\n"
    assert (node.tmp / "m" / "top.txt").read_text() == "top\n"
    assert [s.dest for s in bm.states(node.runner, str(node.root))] == [str(node.tmp / "m")]
    assert bm.release(node.runner, str(node.root), wait_s=30) == 0
    _released(node)


@needs_fuse
def test_apply_all_merges_the_config_and_drops_mounts_the_cluster_no_longer_has(node: Node) -> None:
    """A node keeps a dead cluster's mount records and cache (a crashed host); the next setup
    removes them, keeps the mounts named in ``keep``, and merges the remotes."""
    old = NodeMount(
        str(node.tmp / "old"), "MOUNT_CACHED", node.source(), flags_for("MOUNT_CACHED", [], False)
    )
    kept = NodeMount(str(node.tmp / "kept"), "MOUNT", node.source(), flags_for("MOUNT", [], False))
    base = config_text({REMOTE: {"type": "local"}})
    bm.apply_all([node.runner], str(node.root), base, [old, kept])
    assert (node.root / "storage" / "cache" / old.id).is_dir()
    new = NodeMount(
        str(node.tmp / "new"), "MOUNT", f"other:{node.bucket}", flags_for("MOUNT", [], False)
    )
    bm.apply_all([node.runner], str(node.root), config_text({"other": {"type": "local"}}), [new],
                 keep=[kept.id])  # fmt: skip
    dests = sorted(s.dest for s in bm.states(node.runner, str(node.root)))
    assert dests == sorted([kept.dest, new.dest])
    assert str(node.tmp / "old") not in {p for p in _mounts_under(str(node.tmp))}
    assert not (node.root / "storage" / "cache" / old.id).exists()
    conf = node.conf.read_text()
    assert f"[{REMOTE}]" in conf and "[other]" in conf  # both remotes, each once
    assert conf.count(f"[{REMOTE}]") == 1 and oct(node.conf.stat().st_mode & 0o777) == "0o600"
    assert bm.release(node.runner, str(node.root), wait_s=30) == 0
    _released(node)
