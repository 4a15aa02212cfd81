"""Reaching cloud VMs over SSH (AWS, GCP, Azure), the way the SSH provider reaches pool hosts.

The user's key is ``$STYX_HOME/ssh/styx-key`` (ed25519, mode 0600), made with ``ssh-keygen`` on
first use and given to every cloud (an EC2 key pair, GCE instance metadata, an Azure OS
profile). Each node's SSH details are stored in ``handle.extra["ssh"][i]`` (the same keys as
the SSH provider's, plus ``options``). Host keys are remembered per *instance*
(``$STYX_HOME/ssh/known_hosts.d/<instance-id>``): clouds hand the same private IP to new
instances all the time, and a shared known_hosts file would then refuse the new host's key.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import subprocess
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from styx import paths
from styx.cluster.local_socket import forwarded_socket_path
from styx.cluster.ssh import SSHHost, SSHRunner, raise_for_failures, run_parallel
from styx.errors import HostUnreachable, RemoteError, StyxError
from styx.providers.base import ClusterHandle

_lock = threading.Lock()
_RUNNERS: dict[tuple[object, ...], SSHRunner] = {}
KEY_FILE = "styx-key"
_key_lock = threading.Lock()


def private_key_path() -> Path:
    """Where the private key lives (it may not exist yet)."""
    return paths.home() / "ssh" / KEY_FILE


def ensure_local_key() -> tuple[Path, str]:
    """The private key's path and the public key's text, generating the pair if missing."""
    key = private_key_path()
    pub = key.with_name(KEY_FILE + ".pub")
    with _key_lock:
        if not key.exists():
            key.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            pub.unlink(missing_ok=True)
            try:
                proc = subprocess.run(
                    ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "styx", "-f", str(key)],
                    capture_output=True,
                    text=True,
                    check=False,
                )
            except FileNotFoundError as e:
                raise StyxError(
                    "ssh-keygen is not installed, so Styx cannot make its SSH key.",
                    "Install OpenSSH (openssh-client).",
                    code="ssh-keygen-missing",
                ) from e
            if proc.returncode != 0:
                raise StyxError(
                    f"ssh-keygen failed: {proc.stderr.strip() or proc.returncode}.",
                    f"Check that {key.parent} is writable.",
                    code="ssh-keygen-failed",
                )
        os.chmod(key, 0o600)
        if not pub.exists():
            out = subprocess.run(
                ["ssh-keygen", "-y", "-f", str(key)], capture_output=True, text=True, check=True
            )
            pub.write_text(out.stdout)
        return key, pub.read_text().strip()


def known_hosts_file(instance_id: str) -> Path:
    return paths.home() / "ssh" / "known_hosts.d" / instance_id


def host_json(
    address: str, user: str, identity_file: str, proxy_command: str | None
) -> dict[str, Any]:
    """One node's entry of ``handle.extra["ssh"]``."""
    return {
        "hostname": address,
        "user": user,
        "port": 22,
        "identity_file": identity_file,
        "proxy_jump": None,
        "options": [["ProxyCommand", proxy_command]] if proxy_command else [],
    }


def runner_for(raw: dict[str, Any], name: str, instance_id: str | None) -> SSHRunner:
    """One runner (so one ControlMaster) per node per process."""
    host = SSHHost(
        name=name,
        hostname=raw["hostname"],
        user=raw.get("user"),
        port=raw.get("port"),
        identity_file=raw.get("identity_file"),
        proxy_jump=raw.get("proxy_jump"),
        options=tuple((str(k), str(v)) for k, v in raw.get("options") or ()),
    )
    known = known_hosts_file(instance_id) if instance_id else None
    key = (host, str(known))
    with _lock:
        if key not in _RUNNERS:
            _RUNNERS[key] = SSHRunner(host, known_hosts_file=known)
        return _RUNNERS[key]


def wait_for_ssh(nodes: Sequence[tuple[SSHRunner, str | None]], timeout: float) -> None:
    """Block until every node (its runner and instance id) accepts our SSH login, all in
    parallel, for at most about ``timeout`` seconds. A fresh instance first refuses
    connections, then may refuse the key until cloud-init has installed it: both are retried,
    each try with a short connect timeout so the deadline holds. The node's own runner then
    finds the master the last try left running. Raises HostUnreachable (or RemoteError for a
    login still refused) naming the nodes that never answered."""
    deadline = time.monotonic() + timeout

    def one(node: tuple[SSHRunner, str | None]) -> bool:
        runner, instance_id = node
        delay = 0.2
        while True:
            left = deadline - time.monotonic()
            quick = SSHRunner(
                runner.host,
                known_hosts_file=known_hosts_file(instance_id) if instance_id else None,
                connect_timeout=max(1.0, min(5.0, left)),
                connect_retries=0,
                probe_timeout=max(0.5, min(2.0, left)),
            )
            try:
                quick.connect()
                return True
            except (HostUnreachable, RemoteError):
                if time.monotonic() + delay >= deadline:
                    raise
            time.sleep(delay)
            delay = min(delay * 2, 3.0)

    results = run_parallel(list(nodes), one)
    raise_for_failures([r.node_name for r, _ in nodes], results, "Waiting for SSH")


def close_runners(runners: Sequence[SSHRunner]) -> None:
    """Stop the nodes' masters (their hosts are going away)."""
    for runner in runners:
        with contextlib.suppress(Exception):  # best effort: the host may be gone already
            runner.close()


def socket_path(cloud: str, cluster_name: str, head_ip: str) -> str:
    """Where the head's agent socket is forwarded to on this machine (kept short)."""
    return forwarded_socket_path(f"{cloud}:{cluster_name}:{head_ip}")


def guessed_home(user: str) -> str:
    """The login user's home folder until the node says (:func:`with_home`)."""
    return "/root" if user == "root" else f"/home/{user}"


def with_home(handle: ClusterHandle, home: str) -> ClusterHandle:
    """The handle with the agent, runtime and workdir under ``home`` (as the SSH provider)."""
    venv = f"{home}/.styx/runtime"
    return dataclasses.replace(
        handle,
        agent_root=f"{home}/.styx/agent",
        python=f"{venv}/bin/python",
        workdir=f"{home}/sky_workdir",
        extra={**handle.extra, "runtime_venv": venv},
    )
