"""Buckets on the nodes: COPY, MOUNT and MOUNT_CACHED through rclone, on every infra alike.

rclone is one static-ish binary that speaks S3, GCS, Azure Blob and R2, copies with many parallel
transfers, and mounts through FUSE with or without a VFS cache (bench/bench_buckets.py measures
it against the stores' raw reads). Where a node lacks it, Styx brings this machine's rclone.

- **COPY**: ``rclone copyto`` of the bucket (or one object) into the destination.
- **MOUNT**: ``rclone mount --vfs-cache-mode off``: reads stream from the store (no local copy),
  writes go straight up; as goofys or gcsfuse behave.
- **MOUNT_CACHED**: ``rclone mount --vfs-cache-mode full`` with a cache under the cluster's
  private folder and a short write-back delay: a write returns at local speed and is uploaded
  soon after. The cache outlives the process: a node that comes back (a restart, a reboot of an
  SSH host) uploads what was still pending when the mount starts again. Before a mount is
  released (``down``, ``stop``) Styx waits until nothing is pending, with a deadline.

The credentials are one rclone config file per cluster, ``ROOT/storage/rclone.conf``, mode 0600
in a 0700 folder, written through the file sync (never on a command line). Failures are decided
by the node script's exit codes, never by rclone's messages.
"""

from __future__ import annotations

import dataclasses
import hashlib
import platform
import re
import shutil
from collections.abc import Callable, Mapping, Sequence

from styx.cluster.runner import Runner, put_file
from styx.errors import NotSupportedError, RemoteError

#: The node script's exit codes.
NO_RCLONE, NO_FUSE, NOT_EMPTY, MOUNT_FAILED, UNREACHABLE, COPY_FAILED = 50, 51, 52, 53, 54, 55
#: The write-back delay of MOUNT_CACHED unless the task's config sets ``vfs_write_back``.
WRITE_BACK = "1s"
STORAGE_DIR = "storage"

#: ``sh -c MOUNT_SCRIPT styx ROOT MODE SRC DEST ID [RCLONE FLAGS...]``. Fixed text: user data only
#: arrives as arguments. The source is checked first (a missing bucket or a refused key fails
#: here, not at the first read), then copied or mounted; a destination already mounted by this
#: cluster with the same source is kept.
MOUNT_SCRIPT = r"""
set -u
root=$1 mode=$2 src=$3 dest=$4 id=$5; shift 5
unset AWS_CA_BUNDLE  # rclone's S3 backend refuses to start while it is set
rc=$(command -v rclone 2>/dev/null) || rc="$root/bin/rclone"
[ -x "$rc" ] || { echo "no rclone on this node" >&2; exit 50; }
case "$dest" in "~") dest=$HOME;; "~/"*) dest="$HOME/${dest#\~/}";; esac
dir="$root/storage"; conf="$dir/rclone.conf"; mkdir -p "$dir/logs"
want=$(printf '%s\n' "$src" "$mode" "$@")  # a mount is kept only if made the same way
log="$dir/logs/$id.log"
# A short, bounded probe: the store answers, and the bucket is there and readable.
if ! out=$(timeout 30 "$rc" --config "$conf" lsjson --stat "$src" --contimeout 10s \
    --timeout 20s --retries 2 --low-level-retries 2 2>&1 >/dev/null); then
  out=$(printf '%s\n' "$out" | grep -v '^[[:space:]]*$' | tail -n 1)
  echo "${out:-the store did not answer within 30 s}" >&2; exit 54
fi
if [ "$mode" = COPY ]; then
  mkdir -p "$(dirname "$dest")"
  "$rc" --config "$conf" copyto "$src" "$dest" --log-level ERROR "$@" 2>"$log" || {
    tail -n 2 "$log" >&2; exit 55; }
  exit 0
fi
if grep -qsF " $dest fuse.rclone " /proc/mounts; then
  [ "$(cat "$dir/mounts/$id" 2>/dev/null)" = "$want" ] && { echo kept; exit 0; }
  fusermount3 -uz "$dest" 2>/dev/null || fusermount -uz "$dest" 2>/dev/null || umount -l "$dest"
fi
for f in "$dir"/mounts/*.dest; do  # another source mounted here before: its record goes
  [ -e "$f" ] && [ "$(cat "$f")" = "$dest" ] && [ "$f" != "$dir/mounts/$id.dest" ] &&
    rm -f "$f" "${f%.dest}"
done
[ -e /dev/fuse ] || { echo "no /dev/fuse on this node" >&2; exit 51; }
command -v fusermount3 >/dev/null 2>&1 || command -v fusermount >/dev/null 2>&1 || {
  echo "no fusermount (fuse3) on this node" >&2; exit 51; }
mkdir -p "$dest" "$dir/mounts" "$dir/cache/$id"
[ -z "$(ls -A "$dest" 2>/dev/null)" ] || { echo "$dest is not empty" >&2; exit 52; }
printf '%s\n' "$want" > "$dir/mounts/$id"; printf '%s\n' "$dest" > "$dir/mounts/$id.dest"
"$rc" --config "$conf" mount "$src" "$dest" --daemon --cache-dir "$dir/cache/$id" \
  --log-file "$log" --log-level INFO "$@" 2>>"$log" || {
  rm -f "$dir/mounts/$id" "$dir/mounts/$id.dest"; tail -n 2 "$log" >&2; exit 53; }
echo mounted
"""

#: ``sh -c STATE_SCRIPT styx ROOT``: one line per mount of this cluster on the node:
#: ``ID<TAB>DEST<TAB>mounted|gone<TAB>PENDING_FILES<TAB>PENDING_BYTES``. A cached file is
#: pending while its metadata is missing or says Dirty (not yet uploaded).
_STATE_FN = r"""
pending_of() {  # FILES BYTES not yet uploaded from cache folder $1
  [ -d "$1/vfs" ] || { echo "0 0"; return; }
  (cd "$1/vfs" && find . -type f) | {
    n=0; b=0
    while IFS= read -r p; do
      p=${p#./}; m="$1/vfsMeta/$p"
      if [ ! -e "$m" ] || grep -q '"Dirty": true' "$m"; then
        n=$((n+1)); b=$((b+$(stat -c %s "$1/vfs/$p")))
      fi
    done
    echo "$n $b"; }
}
mount_states() {
  [ -d "$1/storage/mounts" ] || return 0
  for f in "$1"/storage/mounts/*.dest; do
    [ -e "$f" ] || continue
    id=$(basename "$f" .dest); dest=$(cat "$f")
    if grep -qsF " $dest fuse.rclone " /proc/mounts; then st=mounted; else st=gone; fi
    set -- "$1" $(pending_of "$1/storage/cache/$id")
    printf '%s\t%s\t%s\t%s\t%s\n' "$id" "$dest" "$st" "$2" "$3"
    set -- "$1"
  done
}
"""
STATE_SCRIPT = _STATE_FN + 'mount_states "$1"\n'


#: ``sh -c RELEASE_SCRIPT styx ROOT WAIT_S``: wait (up to WAIT_S) until no cached write is
#: pending, then unmount every mount of this cluster and end its rclone processes. Prints
#: ``pending N`` when writes were still pending at the deadline.
RELEASE_SCRIPT = (
    _STATE_FN
    + r"""
root=$1 wait_s=$2; dir="$root/storage"; [ -d "$dir/mounts" ] || exit 0
state() { mount_states "$root"; }
end=$(( $(date +%s) + wait_s ))
while :; do
  pending=$(state | awk -F'\t' '$3=="mounted"{s+=$4} END{print s+0}')
  [ "$pending" -eq 0 ] && break
  [ "$(date +%s)" -ge "$end" ] && { echo "pending $pending"; break; }
  sleep 1
done
for f in "$dir"/mounts/*.dest; do
  [ -e "$f" ] || continue; dest=$(cat "$f")
  if grep -qsF " $dest fuse.rclone " /proc/mounts; then
    fusermount3 -u "$dest" 2>/dev/null || fusermount -u "$dest" 2>/dev/null ||
      fusermount3 -uz "$dest" 2>/dev/null || umount -l "$dest" 2>/dev/null
  fi
  rm -f "$f" "${f%.dest}"
done
i=0
while pgrep -f "$dir/rclone.conf" >/dev/null 2>&1 && [ $i -lt 20 ]; do sleep 0.5; i=$((i+1)); done
pkill -9 -f "$dir/rclone.conf" 2>/dev/null
exit 0
"""
)


@dataclasses.dataclass(frozen=True, slots=True)
class NodeMount:
    """One bucket mount as the nodes make it: ``source`` is ``remote:bucket/prefix``."""

    dest: str
    mode: str
    source: str
    flags: tuple[str, ...] = ()

    @property
    def id(self) -> str:
        """Stable per destination and source: another bucket at the same folder gets another
        cache (never the pending writes of the one before)."""
        return hashlib.sha256(f"{self.dest}\0{self.source}".encode()).hexdigest()[:12]


_FLAG_NAMES = {
    "transfers": "--transfers",
    "buffer_size": "--buffer-size",
    "vfs_cache_max_size": "--vfs-cache-max-size",
    "vfs_cache_max_age": "--vfs-cache-max-age",
    "vfs_read_ahead": "--vfs-read-ahead",
    "vfs_read_chunk_size": "--vfs-read-chunk-size",
    "vfs_read_chunk_streams": "--vfs-read-chunk-streams",
    "vfs_write_back": "--vfs-write-back",
}


def flags_for(mode: str, options: Sequence[tuple[str, str]], read_only: bool) -> tuple[str, ...]:
    """rclone's flags for a mode, with the task's ``config.mount_cached`` options."""
    if mode == "COPY":
        return ("--transfers", "16", "--checkers", "16", "--multi-thread-streams", "4")
    out = ["--dir-cache-time", "10s", "--poll-interval", "0", "--attr-timeout", "1s"]
    if mode == "MOUNT":
        out += ["--vfs-cache-mode", "off", "--vfs-read-chunk-size", "64M"]  # bench_buckets.py
    else:
        given = dict(options)
        out += ["--vfs-cache-mode", "full", "--vfs-cache-poll-interval", "5s"]
        out += ["--vfs-write-back", given.pop("vfs_write_back", WRITE_BACK)]
        out += ["--transfers", given.pop("transfers", "4")]
        for key, value in sorted(given.items()):
            if key in _FLAG_NAMES:
                out += [_FLAG_NAMES[key], value]
    if read_only:
        out.append("--read-only")
    return tuple(out)


def config_text(sections: Mapping[str, Mapping[str, str]]) -> str:
    """The rclone config file for ``sections`` (remote name -> options)."""
    out = []
    for name, options in sections.items():
        out.append(f"[{name}]")
        out += [f"{k} = {v}" for k, v in options.items()]
        out.append("")
    return "\n".join(out)


def _rclone_here() -> str | None:
    return shutil.which("rclone")


def ensure_rclone(runner: Runner, root: str) -> None:
    """rclone on the node: its own, or this machine's copied to ``ROOT/bin`` (same CPU)."""
    probe = 'command -v rclone || { [ -x "$1/bin/rclone" ] && echo "$1/bin/rclone"; }; uname -m'
    result = runner.run(["sh", "-c", probe, "sh", root], timeout=60)
    lines = result.stdout.split()
    if len(lines) >= 2:
        return
    machine = lines[-1] if lines else "?"
    local = _rclone_here()
    if local is None or machine != platform.machine():
        raise NotSupportedError(
            f"Node {runner.node_name} has no rclone, which bucket mounts need, and Styx has "
            f"none for its CPU ({machine}) to bring.",
            "Install rclone on the node (apt-get install rclone), or on this machine.",
            code="mount-tool-missing",
        )
    runner.run(["mkdir", "-p", f"{root}/bin"], timeout=60).check("Making the rclone folder")
    runner.rsync_up(local, f"{root}/bin/rclone")


#: ``sh -c MERGE_SCRIPT styx FOLDER``: rclone.conf.new's sections replace those of the same
#: name in rclone.conf, the others stay (an exec's buckets beside the launch's). 0600 kept.
MERGE_SCRIPT = r"""
d=$1; new="$d/rclone.conf.new"; conf="$d/rclone.conf"; umask 077
[ -f "$conf" ] || : > "$conf"
awk 'FNR==NR { if ($0 ~ /^\[.*\]$/) drop[$0] = 1; next }
     /^\[.*\]$/ { skip = ($0 in drop) }
     !skip' "$new" "$conf" > "$d/rclone.conf.tmp" && cat "$new" >> "$d/rclone.conf.tmp" &&
  chmod 600 "$d/rclone.conf.tmp" && mv "$d/rclone.conf.tmp" "$conf" && rm -f "$new"
"""


def write_config(runner: Runner, root: str, text: str, *, merge: bool = False) -> None:
    """The cluster's rclone config on one node: 0600 in a 0700 folder. With ``merge``, the
    sections of ``text`` replace their namesakes and the rest of the file stays."""
    folder = f"{root}/{STORAGE_DIR}"
    runner.run(["sh", "-c", 'mkdir -p "$1" && chmod 700 "$1"', "sh", folder], timeout=60).check(
        "Making the storage folder"
    )
    if not merge:
        put_file(runner, text, f"{folder}/rclone.conf", mode=0o600)
        return
    put_file(runner, text, f"{folder}/rclone.conf.new", mode=0o600)
    runner.run(["sh", "-c", MERGE_SCRIPT, "styx", folder], timeout=60).check(
        "Writing the rclone config"
    )


#: ``sh -c PRUNE_SCRIPT styx ROOT ID...``: every mount the node has a record of whose id is
#: not given is unmounted and forgotten, with its cache (a cluster that died on this host, or
#: a relaunch without that mount): its pending writes belong to a remote no longer configured.
PRUNE_SCRIPT = r"""
root=$1; shift; dir="$root/storage"; [ -d "$dir/mounts" ] || exit 0
for f in "$dir"/mounts/*.dest; do
  [ -e "$f" ] || continue; id=$(basename "$f" .dest); keep=
  for k in "$@"; do [ "$k" = "$id" ] && keep=1; done
  [ -n "$keep" ] && continue
  dest=$(cat "$f")
  if grep -qsF " $dest fuse.rclone " /proc/mounts; then
    fusermount3 -uz "$dest" 2>/dev/null || fusermount -uz "$dest" 2>/dev/null || umount -l "$dest"
  fi
  pkill -9 -f -- "--cache-dir $dir/cache/$id" 2>/dev/null
  rm -rf "$f" "${f%.dest}" "$dir/cache/$id" "$dir/logs/$id.log"
done
exit 0
"""


#: URL query parameters that carry credentials (an Azure SAS, a presigned S3 or GCS URL).
_SECRET_PARAMS = re.compile(
    r"([?&](?:sig|X-Amz-Signature|X-Amz-Credential|X-Amz-Security-Token|X-Goog-Signature"
    r"|X-Goog-Credential)=)[^&\s\"']+",
    re.IGNORECASE,
)


def scrub(text: str) -> str:
    """``text`` (what rclone printed) with the credentials a URL may carry cut out."""
    return _SECRET_PARAMS.sub(r"\1<redacted>", text)


def mount_on_node(runner: Runner, root: str, mount: NodeMount, timeout: float = 3600.0) -> str:
    """Copy or mount one bucket on one node; returns what was done (copied, mounted, kept)."""
    argv = ["sh", "-c", MOUNT_SCRIPT, "styx", root, mount.mode, mount.source, mount.dest,
            mount.id, *mount.flags]  # fmt: skip
    result = runner.run(argv, timeout=timeout)
    node = runner.node_name
    said = scrub(result.stderr or "").strip().splitlines()[-1:] or ["no output"]
    what = f"{mount.source.split(':', 1)[-1]} at {mount.dest} on {node}"
    if result.returncode == NO_RCLONE:
        raise NotSupportedError(
            f"Node {node} has no rclone for {what}.",
            "Install rclone on the node (apt-get install rclone).",
            code="mount-tool-missing",
        )
    if result.returncode == NO_FUSE:
        raise NotSupportedError(
            f"Node {node} cannot mount {what}: {said[0]}.",
            "Install fuse3 on the node (and give containers /dev/fuse), or use mode: COPY.",
            code="mount-tool-missing",
        )
    if result.returncode == NOT_EMPTY:
        raise RemoteError(
            f"Cannot mount {what}: the folder is not empty.",
            "Mount the bucket at an empty or new folder.",
            code="mount-destination-not-empty",
        )
    if result.returncode == UNREACHABLE:
        raise RemoteError(
            f"Node {node} cannot reach the bucket for {what} ({said[0]}).",
            "Check that the node reaches the store and that the bucket exists.",
            code="bucket-mount-failed",
        )
    if result.returncode != 0:
        verb = "Copying" if mount.mode == "COPY" else "Mounting"
        raise RemoteError(
            f"{verb} {what} failed ({said[0]}).",
            "Check the bucket and the node's disk; `styx down` cleans up.",
            code="bucket-mount-failed",
        )
    return result.stdout.strip().splitlines()[-1] if result.stdout.strip() else "copied"


def apply_all(
    runners: Sequence[Runner],
    root: str,
    config: str,
    mounts: Sequence[NodeMount],
    on_node: Callable[[str], None] | None = None,
    keep: Sequence[str] = (),
) -> None:
    """Every mount on every node, nodes in parallel; the first failure is raised. The config
    is merged into the node's; mounts of the node that are neither in ``mounts`` nor have an
    id in ``keep`` (the cluster's other mounts) are removed first."""
    from styx.cluster.runtime import each

    ids = sorted({*keep, *(m.id for m in mounts)})

    def one(runner: Runner) -> None:
        ensure_rclone(runner, root)
        write_config(runner, root, config, merge=True)
        runner.run(["sh", "-c", PRUNE_SCRIPT, "styx", root, *ids], timeout=120)
        for mount in mounts:
            mount_on_node(runner, root, mount)
        if on_node is not None:
            on_node(runner.node_name)

    each(list(runners), one, "Setting up bucket mounts")


@dataclasses.dataclass(frozen=True, slots=True)
class MountState:
    """One bucket mount on one node: mounted or gone, and the writes not yet uploaded
    (``reachable`` False: the node did not answer, so neither is known)."""

    node: str
    dest: str
    mounted: bool
    pending_files: int
    pending_bytes: int
    reachable: bool = True


def states(runner: Runner, root: str) -> list[MountState]:
    """The state of every mount of the cluster on the runner's node."""
    result = runner.run(["sh", "-c", STATE_SCRIPT, "styx", root], timeout=60)
    out = []
    for line in result.stdout.splitlines():
        parts = line.split("\t")
        if len(parts) == 5 and parts[3].isdigit() and parts[4].isdigit():
            out.append(MountState(runner.node_name, parts[1], parts[2] == "mounted",
                                  int(parts[3]), int(parts[4])))  # fmt: skip
    return out


def release(runner: Runner, root: str, wait_s: float = 600.0) -> int:
    """Wait for pending cached writes (up to ``wait_s``), then unmount everything of the
    cluster on the node; returns how many files were still pending (lost) at the deadline."""
    argv = ["sh", "-c", RELEASE_SCRIPT, "styx", root, str(int(wait_s))]
    result = runner.run(argv, timeout=wait_s + 120)
    for line in result.stdout.splitlines():
        if line.startswith("pending ") and line.split()[1].isdigit():
            return int(line.split()[1])
    return 0
