"""Git workdirs: a task's ``workdir: {url, ref}`` cloned into the cluster's workdir folder.

:func:`check` runs on the client before anything is provisioned: ``git ls-remote`` says
whether the repository answers, whether it wants credentials, and what ``ref`` is (a branch,
a tag or a commit sha; none means the default branch). :func:`sync` then clones the ref on
every node in parallel, or, in a folder Styx cloned before, fetches and checks it out
(discarding local changes there; a folder with someone else's files is refused).

Credentials never reach an argv, a file git keeps, a message or the state database: the
``GIT_TOKEN`` becomes an ``http.extraHeader`` through git's environment config (on a node,
read from stdin by the script), and the key ``GIT_SSH_KEY_PATH`` names is copied on stdin
into the cluster's private folder (mode 0600) and named in ``GIT_SSH_COMMAND``.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import os
import re
import shlex
import subprocess
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Literal

from styx.errors import (
    ConflictError,
    NotFoundError,
    RemoteError,
    SpecError,
    StyxError,
    UserInputError,
)
from styx.spec.mounts import GitWorkdir, git_url_problem, is_scp_like

if TYPE_CHECKING:
    from styx.cluster.runner import Runner, RunResult
    from styx.spec.task import Task

LS_REMOTE_TIMEOUT_S = 20.0
#: The longest one node's clone (or fetch and checkout) may take.
SYNC_TIMEOUT_S = 900.0
#: How long a successful check is reused by the later stages of the same launch.
CHECK_TTL_S = 60.0
MARK = ".styx-workdir"  # the mark of a workdir Styx made (styx.ops.stages.WORKDIR_MARK)
_HEX = re.compile(r"[0-9a-fA-F]{7,40}")
_AUTH_SIGNS = (
    "authentication failed", "could not read username", "could not read password",
    "terminal prompts disabled", "permission denied (publickey", "access denied",
    "invalid username or password", "returned error: 401", "returned error: 403",
)  # fmt: skip
_AUTH_HINT = (
    "Set GIT_TOKEN as a secret (--secret GIT_TOKEN) or env, or GIT_SSH_KEY_PATH for ssh URLs."
)


@dataclasses.dataclass(frozen=True, slots=True)
class GitAuth:
    """The credentials of a git workdir: an https token, a private key's path for ssh."""

    token: str | None = dataclasses.field(default=None, repr=False)
    ssh_key_path: str | None = None

    def header(self, url: str) -> str:
        """The ``http.extraHeader`` for ``url`` ("" for none: no token, or not http(s))."""
        if not self.token or not url.lower().startswith(("https://", "http://")):
            return ""
        basic = base64.b64encode(f"x-access-token:{self.token}".encode()).decode()
        return f"Authorization: Basic {basic}"

    def key_for(self, url: str) -> str | None:
        """The local private key to use for ``url``: only for ssh URLs."""
        ssh = url.lower().startswith("ssh://") or is_scp_like(url)
        return os.path.expanduser(self.ssh_key_path) if ssh and self.ssh_key_path else None

    def scrub(self, text: str, url: str) -> str:
        """``text`` with the token (and the header carrying it) cut out."""
        for secret in (self.header(url).partition("Basic ")[2], self.token):
            if secret:
                text = text.replace(secret, "<redacted>")
        return text


@dataclasses.dataclass(frozen=True, slots=True)
class Target:
    """What the ref is: ``kind`` branch, tag, commit or head (the default branch, unnamed),
    its ``name``, and the commit ``sha`` ls-remote listed ("" for a short or unlisted sha)."""

    kind: Literal["branch", "tag", "commit", "head"]
    name: str
    sha: str = ""


def auth_for(task: Task) -> GitAuth:
    """GIT_TOKEN and GIT_SSH_KEY_PATH from the task's secrets, then envs, then this process's
    environment, as SkyPilot looks them up."""

    def lookup(name: str) -> str | None:
        secret = task.secrets.get(name)
        if secret is not None and secret.reveal():
            return secret.reveal()
        return task.envs.get(name) or os.environ.get(name) or None

    return GitAuth(lookup("GIT_TOKEN"), lookup("GIT_SSH_KEY_PATH"))


def describe(work: GitWorkdir) -> str:
    return f"{work.url} @ {work.ref or 'default branch'}"


# --- the client's check -----------------------------------------------------------------------

_checked: dict[tuple[str, str | None, str, str | None], tuple[float, Target]] = {}


def check(task: Task) -> Target:
    """Check the task's git workdir from this machine; SpecError ``invalid-git-url``,
    UserInputError ``git-auth-failed``, NotFoundError ``git-ref-not-found``, RemoteError
    ``git-repo-unreachable`` or ``git-missing``. A success is reused for a minute."""
    work = task.workdir
    assert isinstance(work, GitWorkdir)
    problem = git_url_problem(work.url)
    if problem:
        raise SpecError(problem, "Write an https://, ssh:// or git:// URL.", code="invalid-git-url")
    auth = auth_for(task)
    fingerprint = hashlib.sha256((auth.token or "").encode()).hexdigest()
    key = (work.url, work.ref, fingerprint, auth.ssh_key_path)
    hit = _checked.get(key)
    if hit is not None and time.monotonic() - hit[0] < CHECK_TTL_S:
        return hit[1]
    target = ls_remote(work.url, work.ref, auth)
    _checked[key] = (time.monotonic(), target)
    return target


def git_env(url: str, auth: GitAuth, base: Mapping[str, str]) -> dict[str, str]:
    """``base`` with what git needs to reach ``url`` unattended, credentials included."""
    env = {**base, "GIT_TERMINAL_PROMPT": "0"}
    header = auth.header(url)
    if header:  # appended after any config entries the environment already has
        n = int(env.get("GIT_CONFIG_COUNT", "0") or "0")
        env.update({f"GIT_CONFIG_KEY_{n}": "http.extraHeader", f"GIT_CONFIG_VALUE_{n}": header})
        env["GIT_CONFIG_COUNT"] = str(n + 1)
    key = auth.key_for(url)
    if key:
        env["GIT_SSH_COMMAND"] = _ssh_command(key)
    return env


def _ssh_command(key: str) -> str:
    opts = "-o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=accept-new"
    return f"ssh -i {shlex.quote(key)} {opts}"


def ls_remote(
    url: str, ref: str | None, auth: GitAuth, timeout: float = LS_REMOTE_TIMEOUT_S
) -> Target:
    """Ask the repository for its refs and resolve ``ref`` (see :func:`check`)."""
    key = auth.key_for(url)
    if key is not None and not os.path.isfile(key):
        raise UserInputError(
            f"GIT_SSH_KEY_PATH names '{auth.ssh_key_path}', which is not a file.",
            "Point GIT_SSH_KEY_PATH at the private key that can read the repository.",
            code="git-auth-failed",
        )
    argv = ["git", "ls-remote", "--symref", "--", url, "HEAD", "refs/heads/*", "refs/tags/*"]
    try:
        proc = subprocess.run(
            argv,
            env=git_env(url, auth, os.environ),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            start_new_session=True,  # no terminal to prompt on: ssh fails instead of asking
            check=False,
        )
    except FileNotFoundError as e:
        raise RemoteError(
            "git is not installed on this machine, so the git workdir cannot be checked.",
            "Install git here, or use a local workdir.",
            code="git-missing",
        ) from e
    except subprocess.TimeoutExpired as e:
        raise RemoteError(
            f"The git repository {url} did not answer in {timeout:.0f} s.",
            "Check the URL and that this machine can reach the git server.",
            code="git-repo-unreachable",
        ) from e
    if proc.returncode != 0:
        raise failure(auth.scrub(proc.stderr, url), url)
    return resolve(proc.stdout, ref, url)


def failure(stderr: str, url: str) -> StyxError:
    """The error for a failed ``git ls-remote`` of ``url``, from what git printed."""
    tail = " | ".join(line.strip() for line in stderr.strip().splitlines()[-3:] if line.strip())
    if any(sign in stderr.lower() for sign in _AUTH_SIGNS):
        return UserInputError(
            f"The git server of {url} needs credentials, or refused them: {tail or 'no output'}.",
            _AUTH_HINT,
            code="git-auth-failed",
        )
    return RemoteError(
        f"{url} cannot be reached or is not a git repository: {tail or 'no output'}.",
        "Check the URL and that this machine can reach the git server; for a private "
        "repository, set GIT_TOKEN.",
        code="git-repo-unreachable",
    )


def resolve(listing: str, ref: str | None, url: str) -> Target:
    """What ``ref`` is among the refs ``git ls-remote --symref`` listed (its stdout); a hex
    string of 7 to 40 digits that names no listed ref is a commit (ls-remote lists no commits)."""
    refs: dict[str, str] = {}
    default = ""
    for line in listing.splitlines():
        left, _, name = line.partition("\t")
        if left.startswith("ref: "):
            default = left[5:] if name == "HEAD" else default
        elif name:
            refs[name] = left.strip()
    if ref is None:
        if default.startswith("refs/heads/") and default in refs:
            return Target("branch", default.removeprefix("refs/heads/"), refs[default])
        if "HEAD" in refs:
            return Target("head", "", refs["HEAD"])
        raise NotFoundError(
            f"The git repository {url} has no default branch (is it empty?).",
            "Push a commit to it, or set `ref` in the workdir.",
            code="git-ref-not-found",
        )
    branch = ref if ref.startswith("refs/heads/") else f"refs/heads/{ref}"
    if branch in refs:
        return Target("branch", branch.removeprefix("refs/heads/"), refs[branch])
    tag = ref if ref.startswith("refs/tags/") else f"refs/tags/{ref}"
    if tag in refs:  # an annotated tag is listed twice: its own object, then ^{} its commit
        return Target("tag", tag.removeprefix("refs/tags/"), refs.get(f"{tag}^{{}}", refs[tag]))
    if _HEX.fullmatch(ref):
        return Target("commit", ref.lower(), ref.lower() if len(ref) == 40 else "")
    branches = [n.removeprefix("refs/heads/") for n in refs if n.startswith("refs/heads/")]
    some = ", ".join(branches[:5]) or "none"
    raise NotFoundError(
        f"The ref '{ref}' is no branch or tag of {url} (branches: {some}), nor a commit sha.",
        "Set `ref` to a branch, a tag, or a commit sha of 7 to 40 hex digits.",
        code="git-ref-not-found",
    )


# --- the nodes' side --------------------------------------------------------------------------

#: Clones (or updates) the repository into "$1" on a node. stdin: the extraHeader line, then
#: the ssh key (when "$7" is set). Exits 10: no git; 11: the folder holds others' files;
#: 12: the ref is not in what was fetched; other non-zero: git failed. A clone is made beside
#: the folder and moved in only when checked out, so a failure leaves no half-cloned folder.
_SCRIPT = r"""
d=$1 mark=$2 url=$3 kind=$4 name=$5 sha=$6 key=$7 owned=$8
case "$d" in "~/"*) d="$HOME/${d#\~/}";; esac
case "$key" in "~/"*) key="$HOME/${key#\~/}";; esac
case "$d" in ""|/) exit 13;; esac
command -v git >/dev/null 2>&1 || exit 10
IFS= read -r hdr || :
export GIT_TERMINAL_PROMPT=0
if [ -n "$hdr" ]; then
  export GIT_CONFIG_COUNT=1 GIT_CONFIG_KEY_0=http.extraHeader GIT_CONFIG_VALUE_0="$hdr"
fi
hdr=
if [ -n "$key" ]; then
  (umask 077 && mkdir -p "${key%/*}" && cat > "$key" && chmod 600 "$key") || exit 14
  export GIT_SSH_COMMAND="ssh -i '$key' -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=accept-new"
fi
if [ "$owned" != 1 ] && [ ! -e "$d/$mark" ]; then
  if [ -e "$d" ] && { [ ! -d "$d" ] || [ -n "$(ls -A "$d")" ]; }; then exit 11; fi
fi
new=
if [ -d "$d/.git" ]; then cd "$d" || exit 13
else
  new="$d.styx-clone"; trap 'rm -rf "$new"' EXIT; trap 'exit 1' HUP INT TERM
  rm -rf "$new" && mkdir -p "$new" && cd "$new" && git -c init.defaultBranch=styx init -q . || exit 13
fi
git remote set-url origin "$url" 2>/dev/null || git remote add origin "$url" || exit 13
git fetch -q --force --prune --tags origin '+refs/heads/*:refs/remotes/origin/*' || exit 13
c=
if [ -n "$sha" ]; then c=$(git rev-parse -q --verify "$sha^{commit}") || c=; fi
if [ -z "$c" ]; then
  case "$kind" in
    branch) c=$(git rev-parse -q --verify "refs/remotes/origin/$name^{commit}") ;;
    tag) c=$(git rev-parse -q --verify "refs/tags/$name^{commit}") ;;
    commit) c=$(git rev-parse -q --verify "$name^{commit}") ||
      { git fetch -q origin "$name" && c=$(git rev-parse -q --verify "FETCH_HEAD^{commit}"); } ;;
    head) git fetch -q origin HEAD && c=$(git rev-parse -q --verify "FETCH_HEAD^{commit}") ;;
  esac
fi
[ -n "$c" ] || exit 12
grep -qxF "/$mark" .git/info/exclude 2>/dev/null ||
  { mkdir -p .git/info && printf '/%s\n' "$mark" >> .git/info/exclude; } || exit 13
if [ "$kind" = branch ]; then
  git checkout -q --force -B "$name" "$c" || exit 13
  git branch -q --set-upstream-to="origin/$name" "$name" 2>/dev/null
else
  git checkout -q --force --detach "$c" || exit 13
fi
git clean -ffdq || exit 13
if [ -n "$new" ]; then
  cd / && rm -rf "$d" && mkdir -p "${d%/*}" && mv "$new" "$d" || exit 13
  trap - EXIT
fi
: > "$d/$mark" && git -C "$d" rev-parse HEAD
"""


def node_argv(workdir: str, url: str, target: Target, key_dest: str, *, owned: bool) -> list[str]:
    """The argv that clones ``url`` at ``target`` into ``workdir`` on a node (no secrets: they
    go on stdin, see :func:`node_input`); ``key_dest`` is where the ssh key goes, "" for none."""
    flag = "1" if owned else "0"
    return ["sh", "-c", _SCRIPT, "sh", workdir, MARK, url, target.kind, target.name, target.sha,
            key_dest, flag]  # fmt: skip


def node_input(url: str, auth: GitAuth) -> str:
    """The script's stdin: the header line, then the ssh key's text (when there is one)."""
    key = auth.key_for(url)
    text = f"{auth.header(url)}\n"
    if key:
        with open(key, encoding="utf-8") as f:
            text += f.read()
    return text


def sync(
    runners: Sequence[Runner],
    workdir: str,
    work: GitWorkdir,
    target: Target,
    auth: GitAuth,
    *,
    key_dest: str,
    owned: bool = False,
    timeout: float = SYNC_TIMEOUT_S,
) -> list[str]:
    """Clone (or update) ``work`` at ``target`` into ``workdir`` on every node at once; the
    commit each node has checked out. ``key_dest`` is where a node keeps the ssh key;
    ``owned``: the folder is Styx's whatever it holds (a local cluster's own). The first
    failing node's error is raised: ``git-missing``, ``git-workdir-occupied`` or
    ``git-clone-failed``."""
    key = key_dest if auth.key_for(work.url) else ""
    if "'" in key:
        raise SpecError(f"The key path {key!r} holds a quote.", "Use another cluster folder.")
    argv = node_argv(workdir, work.url, target, key, owned=owned)
    stdin = node_input(work.url, auth)

    def one(runner: Runner) -> RunResult:
        return runner.run(argv, input_text=stdin, timeout=timeout)

    with ThreadPoolExecutor(max_workers=min(16, max(1, len(runners)))) as pool:
        futures = [pool.submit(one, r) for r in runners]
        results = [f.result() for f in futures]
    commits = []
    for runner, result in zip(runners, results, strict=True):
        if result.returncode != 0:
            raise _node_error(runner.node_name, result, workdir, work, auth)
        commits.append(result.stdout.strip().splitlines()[-1] if result.stdout.strip() else "")
    return commits


def _node_error(
    node: str, result: RunResult, workdir: str, work: GitWorkdir, auth: GitAuth
) -> StyxError:
    if result.returncode == 10:
        return RemoteError(
            f"git is not installed on {node}.",
            "Install git on the node, or use a local workdir.",
            code="git-missing",
        )
    if result.returncode == 11:
        return ConflictError(
            f"The workdir {workdir} on {node} holds files Styx did not put there.",
            "Move them away (or use another cluster), then launch again.",
            code="git-workdir-occupied",
        )
    lines = auth.scrub(result.stderr or result.stdout, work.url).strip().splitlines()[-3:]
    why = "the ref is not in the fetched repository" if result.returncode == 12 else None
    tail = why or " | ".join(x.strip() for x in lines if x.strip()) or "no output"
    return RemoteError(
        f"Cloning {describe(work)} into {workdir} failed on {node} (exit {result.returncode}): {tail}.",
        "Check that the node can reach the git server with the same URL, then launch again.",
        code="git-clone-failed",
    )
