"""Where file mounts may land (styx.cluster.dests): the rules, then a fuzzer that throws
destinations at the resolver and at real rsync, and proves nothing outside the cluster's
folders is written or deleted."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from styx.cluster.dests import (
    INVALID,
    REFUSED,
    NodeFolders,
    check_allowed_host_paths,
    resolve,
)
from styx.cluster.runner import LocalRunner
from styx.errors import ConfigError, SpecError
from styx.providers.base import ClusterHandle, Node, remote_node_folders


def local(tmp: Path, allowed: tuple[str, ...] = ()) -> NodeFolders:
    root = tmp / "styx" / "clusters" / "c"
    (root / "home").mkdir(parents=True, exist_ok=True)
    (root / "agent").mkdir(exist_ok=True)
    real = os.path.realpath
    return NodeFolders(
        home=real(root / "home"),
        runtime=(real(root / "agent"),),
        owned=(real(root / "home"),),
        confined=True,
        allowed=tuple(real(a) for a in allowed),
        protected=(real(tmp / "styx"),),
        guarded=(real(tmp / "user"),),
        realpath=real,
    )


def refused(dest: str, folders: NodeFolders, code: str = REFUSED) -> str:
    with pytest.raises(SpecError) as info:
        resolve(dest, folders)
    assert info.value.code == code, info.value
    assert info.value.message.endswith(".") and info.value.hint.endswith(".")
    return info.value.message


# --- the rules ------------------------------------------------------------------------------


def test_home_relative_and_tilde_land_in_the_clusters_own_home(tmp_path: Path) -> None:
    f = local(tmp_path)
    for dest, rel in (
        ("~/data", "data"),
        ("data/x.txt", "data/x.txt"),
        ("~/a/../b/", "b"),
        ("./c", "c"),
        ("~/d//e/", "d/e"),
    ):
        got = resolve(dest, f)
        assert got.path == f"{f.home}/{rel}" and got.delete, dest


def test_what_no_infra_allows(tmp_path: Path) -> None:
    f = local(tmp_path)
    assert "root folder" in refused("/", f)
    assert "root folder" in refused("//", f)
    assert "home folder itself" in refused("~", f)
    assert "home folder itself" in refused("~/", f)
    assert "home folder itself" in refused("~/..", f)
    assert "home folder itself" in refused(".", f)
    assert "runtime" in refused(str(tmp_path / "styx/clusters/c/agent/jobs.db"), f)
    refused("~root/x", f, INVALID)
    refused("~bob", f, INVALID)
    refused("a\nb", f, INVALID)
    refused("", f, INVALID)


def test_local_cluster_refuses_host_paths_outside_its_folders(tmp_path: Path) -> None:
    f = local(tmp_path)
    victim = tmp_path / "victim"
    victim.mkdir()
    for dest in (
        str(victim),
        f"{victim}/file",
        "/etc/passwd",
        "/etc",
        "/usr/bin/x",
        str(tmp_path / "user"),
        str(tmp_path / "styx"),
        "~/../../../../victim",
        str(tmp_path / "styx/clusters/other/home/x"),
        "/var/lib/x",
        "/boot",
    ):
        refused(dest, f)


def test_config_may_allow_a_host_folder_but_never_a_system_one(tmp_path: Path) -> None:
    shared = tmp_path / "datasets"
    shared.mkdir()
    f = local(tmp_path, allowed=(str(shared),))
    got = resolve(f"{shared}/imagenet", f)
    assert got.path == f"{os.path.realpath(shared)}/imagenet" and not got.delete  # not ours
    refused(f"{tmp_path}/elsewhere", f)
    home, styx = str(tmp_path / "user"), str(tmp_path / "styx")
    check_allowed_host_paths([str(shared), f"{home}/data"], home, styx)  # inside $HOME is fine
    for bad in (
        "/",
        "/etc",
        "/usr/local",
        "/var/lib/docker",
        home,
        str(tmp_path),
        styx,
        f"{styx}/clusters",
        "relative/path",
        "/var",
    ):
        with pytest.raises(ConfigError) as info:
            check_allowed_host_paths([bad], home, styx)
        assert info.value.details["path"] == bad


def test_a_symlink_out_of_the_home_is_followed_and_refused(tmp_path: Path) -> None:
    f = local(tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink(outside, Path(f.home) / "link")
    assert "outside" in refused("~/link", f)
    assert "outside" in refused("~/link/deeper/x", f)
    os.symlink("/etc", Path(f.home) / "etc")
    refused("~/etc/passwd", f)


def test_remote_nodes_refuse_what_would_destroy_their_runtime() -> None:
    before = remote_node_folders(None)  # home not known yet: ~ stays symbolic
    for dest in ("~", "~/", "~/.styx", "~/.styx/runtime/bin/python", "/", "~/../"):
        refused(dest, before)
    assert resolve("/data/x", before).path == "/data/x"
    assert resolve("~/sky_workdir/sub", before).delete  # Styx's own folder
    assert not resolve("~/data", before).delete
    assert resolve("data", before).path == "~/data"
    handle = ClusterHandle(
        "c",
        "ssh",
        (Node("h", "198.18.0.11", 1, 1),),
        "/home/u/.styx/agent",
        "/home/u/.styx/runtime/bin/python",
        "/home/u/sky_workdir",
        1,
    )
    after = remote_node_folders(handle)
    for dest in ("/home/u", "/home", "/home/u/.styx/agent", "/home/u/", "~"):
        refused(dest, after)
    assert resolve("~/data", after).path == "/home/u/data"
    assert resolve("/etc/app.conf", after).path == "/etc/app.conf"  # a remote node is the job's


# --- the fuzzer -----------------------------------------------------------------------------

_SEGMENT = st.sampled_from(
    [
        "..",
        ".",
        "",
        "a",
        "b",
        "é",
        "データ",
        "link",
        "etc",
        "~",
        "~root",
        "home",
        "styx",
        "victim",
        "agent",
        " ",
        "x.txt",
    ]
)
_DEST = st.builds(
    lambda lead, parts, tail: lead + "/".join(parts) + tail,
    st.sampled_from(["", "/", "~/", "~", "./", "../", "//"]),
    st.lists(_SEGMENT, max_size=6),
    st.sampled_from(["", "/", "//"]),
)


def _tree_digest(root: Path, skip: Path) -> dict[str, str]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        if here == skip or skip in here.parents:
            dirnames[:] = []
            continue
        for name in filenames + [d for d in dirnames if (here / d).is_symlink()]:
            p = here / name
            data = os.readlink(p).encode() if p.is_symlink() else p.read_bytes()
            out[str(p.relative_to(root))] = hashlib.sha1(data).hexdigest()
    return out


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(dest=_DEST)
def test_fuzzed_destinations_never_write_outside_the_cluster(tmp_path: Path, dest: str) -> None:
    f = local(tmp_path)
    home = Path(f.home)
    # Bait: files outside the home, and links inside it that point out.
    (tmp_path / "victim").mkdir(exist_ok=True)
    (tmp_path / "victim" / "keep.txt").write_text("precious")
    (tmp_path / "styx" / "clusters" / "c" / "agent" / "jobs.db").write_text("db")
    if not (home / "link").exists():
        os.symlink(tmp_path / "victim", home / "link")
    src = tmp_path / "src"
    src.mkdir(exist_ok=True)
    (src / "new.txt").write_text("new")
    before = _tree_digest(tmp_path, skip=home)
    try:
        target = resolve(dest, f)
    except SpecError as e:
        assert e.code in (REFUSED, INVALID)
        return
    real = os.path.realpath(target.path)
    assert real == f.home or real.startswith(f.home + "/"), (dest, target)
    if real == f.home:
        pytest.fail(f"{dest!r} resolved to the home itself")
    LocalRunner().rsync_up(str(src), target.path, delete=target.delete)
    assert _tree_digest(tmp_path, skip=home) == before, dest


def test_a_remote_workdir_is_mirrored_only_when_styx_made_it(tmp_path: Path) -> None:
    from styx.ops.stages import WORKDIR_MARK, _claim_workdir

    runner = LocalRunner()
    missing, empty, theirs, ours = (tmp_path / n for n in ("missing", "empty", "theirs", "ours"))
    empty.mkdir()
    theirs.mkdir()
    (theirs / "notes.txt").write_text("the user's")
    ours.mkdir()
    (ours / WORKDIR_MARK).write_text("")
    (ours / "old.py").write_text("")
    assert _claim_workdir(runner, str(missing)) and (missing / WORKDIR_MARK).exists()
    assert _claim_workdir(runner, str(empty)) and (empty / WORKDIR_MARK).exists()
    assert _claim_workdir(runner, str(ours))
    assert not _claim_workdir(runner, str(theirs)) and not (theirs / WORKDIR_MARK).exists()
    src = tmp_path / "src"
    src.mkdir()
    (src / "main.py").write_text("print(1)")
    filters = ["--filter", f"P {WORKDIR_MARK}"]
    runner.rsync_up(str(src), str(ours), filter_args=filters, delete=True)
    assert sorted(p.name for p in ours.iterdir()) == [WORKDIR_MARK, "main.py"]  # mark kept
    runner.rsync_up(str(src), str(theirs), filter_args=filters, delete=False)
    assert sorted(p.name for p in theirs.iterdir()) == ["main.py", "notes.txt"]
