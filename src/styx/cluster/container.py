"""The container stage: a task's ``image_id: docker:<image>`` on VM-like nodes (local, SSH
pools, clouds), from one implementation.

On every node, in parallel: find the runtime (a Docker daemon that answers, else podman), log
in to a private registry when the task gives ``SKYPILOT_DOCKER_SERVER``/``_USERNAME``/
``_PASSWORD`` (the password goes on stdin, the login into a throw-away auth file that is gone
after the pull), pull the image unless the node has it, and run one container per cluster with
host networking, the node's home and the task's file-mount folders at the same paths, GPUs only
when the node has them, and ``docker.run_options`` from the task's or the user's config. The
node's jobs then run inside it (see :mod:`styx.agent.container`); Styx's own runtime stays on
the node, so an image needs no Python.

Failures are decided by the node script's exit codes, never by the runtime's messages.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shlex
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from styx.agent import container as node_side
from styx.cluster.runner import Runner, put_file
from styx.errors import NotSupportedError, RemoteError, UserInputError

#: The node script's exit codes.
_NO_RUNTIME, _LOGIN, _PULL, _RUN = 40, 41, 42, 43

#: Runs on each node as ``sh -c NODE_SCRIPT styx NAME IMAGE SPEC GPUS SERVER USER HOME MOUNT...
#: -- RUNARGS``; the password, if any, is its stdin. Fixed text: user data only arrives as
#: arguments. HOME empty means the node user's home. Each MOUNT (made when missing) is bound
#: at the same path.
NODE_SCRIPT = r"""
set -u
name=$1 image=$2 spec=$3 gpus=$4 server=$5 user=$6 home=${7:-$HOME}; shift 7
binds="-v $home:$home"
mkdir -p "$home"
while [ $# -gt 0 ] && [ "$1" != -- ]; do
  [ -e "$1" ] || mkdir -p "$1"; binds="$binds -v $1:$1"; shift
done
shift
if docker info >/dev/null 2>&1; then rt=docker
elif command -v podman >/dev/null 2>&1; then rt=podman
else echo "neither a Docker daemon nor podman answers on this node" >&2; exit 40; fi
cur=$($rt inspect -f '{{index .Config.Labels "styx.dev/spec"}}|{{.State.Running}}' "$name" 2>/dev/null) || cur=""
if [ -n "$cur" ] && [ "${cur%%|*}" = "$spec" ]; then
  if [ "${cur#*|}" != true ]; then $rt start "$name" >/dev/null || exit 43; fi
  echo "styx-container $rt $($rt inspect -f '{{.State.Pid}}' "$name") kept"; exit 0
fi
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
auth=""
if [ -n "$server" ]; then  # always: wrong credentials fail even where the image is cached
  if [ $rt = podman ]; then auth="--authfile=$tmp/auth.json"; else export DOCKER_CONFIG="$tmp"; fi
  $rt login $auth --password-stdin -u "$user" "$server" >/dev/null 2>"$tmp/login.err" || {
    tail -n 2 "$tmp/login.err" >&2; exit 41; }
fi
got=cached
if ! $rt image inspect "$image" >/dev/null 2>&1; then
  $rt pull $auth "$image" >&2 || exit 42
  got=pulled
fi
# Only now that the new image is here does the old container (other settings) go.
[ -n "$cur" ] && $rt rm -f "$name" >/dev/null 2>&1
gpu=""
if [ "$gpus" = 1 ]; then
  if [ $rt = docker ]; then gpu="--gpus=all"; else gpu="--device=nvidia.com/gpu=all"; fi
fi
$rt run -d --name "$name" --label "styx.dev/spec=$spec" --label styx.dev/managed=true \
  --net=host --init --entrypoint sleep $gpu $binds "$@" "$image" infinity >/dev/null || exit 43
echo "styx-container $rt $($rt inspect -f '{{.State.Pid}}' "$name") $got"
"""


@dataclasses.dataclass(frozen=True, slots=True)
class RegistryLogin:
    """A private registry's login (the password is never stored: it lives for one launch)."""

    server: str
    username: str
    password: str = dataclasses.field(repr=False)


@dataclasses.dataclass(frozen=True, slots=True)
class ContainerSpec:
    """What runs on each node: the image, extra ``run`` options and the folders bound in."""

    image: str
    run_options: tuple[str, ...] = ()
    mounts: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"image": self.image, "run_options": list(self.run_options),
                "mounts": list(self.mounts)}  # fmt: skip

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ContainerSpec:
        return cls(
            str(data["image"]),
            tuple(str(o) for o in data.get("run_options", ())),
            tuple(str(m) for m in data.get("mounts", ())),
        )

    def digest(self, gpus: bool) -> str:
        """Identifies the container's settings: an unchanged one is kept on a new launch."""
        text = json.dumps([self.image, list(self.run_options), list(self.mounts), gpus])
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def image_of(image_id: object) -> str | None:
    """The image of ``docker:<image>`` (None for anything else)."""
    if isinstance(image_id, str) and image_id.startswith("docker:"):
        return image_id[len("docker:") :].strip() or None
    return None


def run_options(
    task_config: Mapping[str, Any] | None, user_config: Mapping[str, Any]
) -> tuple[str, ...]:
    """``docker.run_options`` (text or a list), the task's ``config:`` over the user's config."""
    for source in (task_config or {}, user_config):
        opts = (source.get("docker") or {}).get("run_options")
        if opts is None:
            continue
        items = [opts] if isinstance(opts, str) else list(opts)
        try:
            return tuple(a for item in items for a in shlex.split(str(item)))
        except ValueError as e:
            raise UserInputError(
                f"docker.run_options is not valid shell words: {e}.",
                'Quote each option\'s value, e.g. `-e NAME="a b"`.',
                code="invalid-config",
            ) from None
    return ()


def registry_login(envs: Mapping[str, str | None]) -> RegistryLogin | None:
    """The login from ``SKYPILOT_DOCKER_*`` (the task's envs and secrets, as SkyPilot reads
    them); None for a public image. Half a login is a user error."""
    keys = ("SKYPILOT_DOCKER_SERVER", "SKYPILOT_DOCKER_USERNAME", "SKYPILOT_DOCKER_PASSWORD")
    server, user, password = (envs.get(k) or "" for k in keys)
    if not (server or user or password):
        return None
    if not (server and user and password):
        missing = [k for k, v in zip(keys, (server, user, password), strict=True) if not v]
        raise UserInputError(
            f"A private registry login needs {', '.join(keys)}; {', '.join(missing)} is missing.",
            "Set all three as envs or secrets of the task, or none for a public image.",
            code="missing-value",
        )
    return RegistryLogin(server, user, password)


def container_name(cluster_name: str) -> str:
    return f"styx-{cluster_name}"


def node_argv(
    spec: ContainerSpec,
    cluster_name: str,
    agent_root: str,
    gpus: bool,
    login: RegistryLogin | None,
    home: str = "",
) -> list[str]:
    """The argv of the node script for one node (``home`` empty: the node user's home)."""
    scripts = f"{agent_root}/{node_side.SCRIPTS}"
    run_args = ["--label", f"styx.dev/cluster={cluster_name}", *spec.run_options]
    return [
        "sh", "-c", NODE_SCRIPT, "styx",
        container_name(cluster_name), spec.image, spec.digest(gpus), "1" if gpus else "0",
        login.server if login else "", login.username if login else "", home,
        *spec.mounts, scripts, "--", *run_args,
    ]  # fmt: skip


def start_on_node(
    runner: Runner,
    spec: ContainerSpec,
    cluster_name: str,
    agent_root: str,
    gpus: bool,
    login: RegistryLogin | None,
    home: str = "",
    timeout: float = 1800.0,
    on_node: Callable[[str, str], None] | None = None,
) -> node_side.ContainerState:
    """Pull (if needed) and run the cluster's container on one node; record it for the agent."""
    argv = node_argv(spec, cluster_name, agent_root, gpus, login, home)
    result = runner.run(argv, input_text=(login.password + "\n") if login else None,
                        timeout=timeout)  # fmt: skip
    node = runner.node_name
    said = (result.stderr or "").strip().splitlines()[-1:] or ["no output"]
    if result.returncode == _NO_RUNTIME:
        raise NotSupportedError(
            f"Node {node} has no container runtime for image {spec.image}.",
            "Install Docker or podman on the node, or drop `image_id: docker:...`.",
            code="container-runtime-missing",
        )
    if result.returncode == _LOGIN:
        server = login.server if login else "?"
        raise RemoteError(
            f"Logging in to registry {server} failed on {node} ({said[0]}).",
            "Check SKYPILOT_DOCKER_USERNAME and SKYPILOT_DOCKER_PASSWORD for that registry.",
            code="registry-login-failed",
        )
    if result.returncode == _PULL:
        raise RemoteError(
            f"Pulling image {spec.image} failed on {node} ({said[0]}).",
            "Check the image name and tag, and that the node reaches its registry "
            "(a private one needs SKYPILOT_DOCKER_SERVER, _USERNAME and _PASSWORD).",
            code="image-pull-failed",
        )
    line = next((ln for ln in result.stdout.splitlines() if ln.startswith("styx-container ")), "")
    parts = line.split()
    if result.returncode != 0 or len(parts) != 4:
        raise RemoteError(
            f"The container of image {spec.image} did not start on {node} ({said[0]}).",
            "Check docker.run_options and that the image has `sleep`; "
            f"`styx down {cluster_name}` cleans up.",
            code="container-start-failed",
        )
    state = node_side.ContainerState(
        parts[1], container_name(cluster_name), spec.image, int(parts[2] or 0)
    )
    put_file(runner, state.to_json(), f"{agent_root}/{node_side.STATE_FILE}", mode=0o644)
    if on_node is not None:
        on_node(node, parts[3])
    return state


def start_all(
    runners: Sequence[Runner],
    gpus: Sequence[bool],
    spec: ContainerSpec,
    cluster_name: str,
    agent_root: str,
    login: RegistryLogin | None,
    home: str = "",
    on_node: Callable[[str, str], None] | None = None,
) -> None:
    """The container on every node, in parallel; the first failure is raised. ``on_node`` hears
    of each node as it is done, with how its image got there (pulled, cached or kept)."""
    from styx.cluster.runtime import each

    def one(i: int) -> None:
        start_on_node(runners[i], spec, cluster_name, agent_root, gpus[i], login, home,
                      on_node=on_node)  # fmt: skip

    each(list(range(len(runners))), one, f"Starting image {spec.image}")
