"""One node's share of a cluster's Ray: started private and owned, stopped by what owns it.

``python -m styx.agent start-ray --root ROOT --bind IP -- ray start ...`` runs on each node:

- Ray's temp dir lives in a private folder, ``/tmp/styx-ray-<id>`` (mode 0700, ours, never a
  symlink), so no other user can read its sockets and logs even where Ray makes its own
  folders world-writable; ``stop`` removes it.
- Ray runs in a session of its own, away from the terminal that launched it; the session's id
  is kept in the folder (``sessions``). Every process of the cluster's Ray also carries
  ``STYX_RAY_OWNER=<that folder>`` in its environment, which children inherit (workers, the
  jobs they start, even those that leave the session). The session and the marker, never a
  command line, are how ``stop`` finds them, also after a parent died and its children were
  re-parented (Ray's agents, for one, are started with an environment of their own).
- Ray listens where the node is reached and nowhere else: on loopback for a local cluster
  (Ray's own local-only mode), and on the node's private address elsewhere, through a small
  ``bind`` shim (``bindshim.c``, built on the node with its C compiler) LD_PRELOADed into Ray.
- When ``ROOT/ray-token`` exists, Ray's token authentication is on: a process without the
  token cannot talk to the cluster's Ray even where its ports can be reached.

The agent (Ray's driver on the head) gets the same network settings from :func:`ray_env`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

OWNER_ENV = "STYX_RAY_OWNER"
BIND_ENV = "STYX_BIND_ADDRESS"
TOKEN_FILE = "ray-token"
ENV_FILE = "ray-env.json"
SESSIONS_FILE = "sessions"
_SHIM_SOURCE = Path(__file__).with_name("bindshim.c")


PRIVATE_PREFIX = "styx-ray-"


def private_dir(temp_dir: str) -> Path:
    """The private folder that holds the cluster's Ray temp dir: its parent for Styx's own
    layout (``.../styx-ray-<id>/r``), else the temp dir itself. Never a folder above that, so
    that removing it can only remove what this cluster's Ray owns."""
    path = Path(temp_dir)
    if path.name == "r" and path.parent.name.startswith(PRIVATE_PREFIX):
        return path.parent
    return path


def make_private(folder: Path) -> None:
    """Create ``folder`` 0700, or make sure the one there is ours: a real folder (not a
    symlink another user planted in /tmp) owned by this user."""
    with contextlib.suppress(FileExistsError):
        folder.mkdir(mode=0o700)
    st = folder.lstat()
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
        raise PermissionError(
            f"{folder} is not a folder of this user's (another user, or a symlink, holds the "
            "name); remove it and retry"
        )
    os.chmod(folder, 0o700)


def _local_only(ip: str, head: bool) -> bool:
    """Whether this node is a one-node cluster on this machine's loopback, for which Ray's
    local-only mode binds everything to 127.0.0.1 (it refuses nodes that join a head)."""
    return head and ip in ("127.0.0.1", "localhost")


def shim_path(root: Path) -> Path | None:
    """The bind shim for this node, built into ``root`` when missing or stale; None when the
    node has no C compiler."""
    source = _SHIM_SOURCE.read_bytes()
    digest = hashlib.sha1(source + os.uname().machine.encode()).hexdigest()[:12]
    out = root / f"bindshim-{digest}.so"
    if out.exists():
        return out
    cc = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if cc is None:
        return None
    tmp = root / f".bindshim-{os.getpid()}.so"
    try:
        proc = subprocess.run(
            [cc, "-shared", "-fPIC", "-O2", "-o", str(tmp), str(_SHIM_SOURCE), "-ldl"],
            capture_output=True,
            timeout=120,
            check=False,
        )
        if proc.returncode != 0:
            return None
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    for old in root.glob("bindshim-*.so"):
        if old != out:
            old.unlink(missing_ok=True)
    return out


def ray_env(root: Path, bind_ip: str, head: bool = True) -> dict[str, str]:
    """The environment that keeps a process of this cluster's Ray (or its driver) on the
    node's own address, and gives it the cluster's Ray token."""
    env: dict[str, str] = {}
    token = root / TOKEN_FILE
    if token.exists():
        env["RAY_AUTH_MODE"] = "token"
        env["RAY_AUTH_TOKEN_PATH"] = str(token)
    if _local_only(bind_ip, head):
        # Ray's local-only mode: every server binds 127.0.0.1 and the node registers as such.
        env["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    else:
        shim = shim_path(root)
        if shim is not None:
            preload = os.environ.get("LD_PRELOAD", "")
            env["LD_PRELOAD"] = f"{shim}:{preload}" if preload else str(shim)
            env[BIND_ENV] = bind_ip
    return env


def start(root: Path, temp_dir: str, bind_ip: str, argv: list[str]) -> int:
    """Run ``ray start`` (``argv``) in a session of its own, marked as this cluster's, with its
    temp dir private and its servers on ``bind_ip`` only; returns its exit code."""
    folder = private_dir(temp_dir)
    try:
        make_private(folder)
    except PermissionError as e:
        print(f"styx: {e}", file=sys.stderr)
        return 2
    head = "--head" in argv
    extra = ray_env(root, bind_ip, head)
    if not _local_only(bind_ip, head) and BIND_ENV not in extra:
        warning = (
            "styx: no C compiler on this node, so Ray listens on every interface here "
            "(its token authentication still applies); install cc to keep it on "
            f"{bind_ip} only\n"
        )
        sys.stderr.write(warning)
        with contextlib.suppress(OSError), open(root / "agent.log", "a") as log:
            log.write(warning)
    # The agent reads the same settings when it joins Ray as the driver.
    (root / ENV_FILE).write_text(json.dumps(extra))
    env = {**os.environ, **extra, OWNER_ENV: str(folder)}
    proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, start_new_session=True)
    with open(folder / SESSIONS_FILE, "a") as f:  # its pid is the new session's id
        f.write(f"{proc.pid}\n")
    code = proc.wait()
    if code != 0:  # nothing half-started is left: no process, no folder
        stop(temp_dir)
    return code


def load_env(root: Path) -> dict[str, str]:
    """What :func:`start` wrote for the agent (empty before Ray was started by it)."""
    try:
        data = json.loads((root / ENV_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def _sessions(folder: Path) -> set[int]:
    try:
        text = (folder / SESSIONS_FILE).read_text()
    except OSError:
        return set()
    return {int(x) for x in text.split() if x.isdigit()}


def owned(folder: Path) -> list[int]:
    """PIDs of this user's processes in one of the cluster's Ray sessions or carrying its
    marker (but this one and its ancestors, which may be a stop run from inside the
    cluster)."""
    from styx.agent.proctree import _psutil, marked_with

    psutil = _psutil()
    spare = {os.getpid(), *(p.pid for p in psutil.Process().parents())}
    found = set(marked_with(OWNER_ENV, str(folder)))
    sessions = _sessions(folder)
    uid = os.getuid()
    live = set()
    for proc in psutil.process_iter(["pid", "uids", "status"]):
        with contextlib.suppress(psutil.Error, OSError):
            if proc.info.get("status") == psutil.STATUS_ZOMBIE:
                continue  # dead already; only its parent (or init) can reap it
            uids = proc.info.get("uids")
            if uids is None or uids.real != uid:
                continue
            if proc.pid in found or (sessions and os.getsid(proc.pid) in sessions):
                live.add(proc.pid)
    return sorted(live - spare)


def _legacy(folder: Path) -> list[int]:
    """Ray processes started before the owner marker existed: their command line names the
    folder, which was then the temp dir itself. Only they are looked for by command line."""
    from styx.agent.proctree import _psutil

    psutil = _psutil()
    spare = {os.getpid(), *(p.pid for p in psutil.Process().parents())}
    found = []
    needle = f"{folder}/"
    for proc in psutil.process_iter(["pid", "cmdline"]):
        cmd = "\0".join(proc.info.get("cmdline") or []) + "/"
        if proc.pid in spare or "styx.agent" in cmd or "ray" not in cmd:
            continue
        if needle in cmd and f"{folder}/r/" not in cmd:
            found.append(proc.pid)
    return found


def stop(temp_dir: str, grace_s: float = 1.0) -> int:
    """Kill every process of the cluster's Ray on this node (and what they started), then
    remove its private folder; returns how many processes were found."""
    from styx.agent.proctree import kill_tree

    folder = private_dir(temp_dir)
    total = 0
    for _ in range(5):  # later rounds catch processes that forked while the first died
        pids = sorted(set(owned(folder)) | set(_legacy(folder)))
        if not pids:
            break
        total += len(pids)
        kill_tree(pids, grace_s)
        grace_s = 1.0
    with contextlib.suppress(OSError):
        st = folder.lstat()
        ours = folder.name.startswith(PRIVATE_PREFIX) or folder.name.startswith("styx-")
        if ours and stat.S_ISDIR(st.st_mode) and st.st_uid == os.getuid() and len(folder.parts) > 2:
            shutil.rmtree(folder, ignore_errors=True)
    return total
