"""The registry of Styx's error codes: every code any :class:`styx.errors.StyxError` carries,
declared once with its exit code and a one-line meaning.

A code is stable (kebab-case, never renamed once shipped). Raising sites name codes as
strings; ``tests/test_codes.py`` scans ``src/`` and fails on any code that is not here, and
``docs/exit-codes.md`` is generated from this table (``python scripts/gen_exit_codes.py``) and
checked to be current. The exit code of a code is the one its error class exits with.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True, slots=True)
class Code:
    """One error code: its name, the process exit code, and what it means."""

    name: str
    exit_code: int
    meaning: str


#: What each exit code of ``styx`` means, in order.
EXIT_CODES: dict[int, str] = {
    0: "success",
    1: "a declined confirmation prompt (nothing was changed); for `launch`/`exec` without `-d` "
    "and `logs` on an ended job, 1-255 is the job's own exit code, as SkyPilot returns it",
    2: "the input is wrong: a task file, config, flag or name",
    3: "a named thing does not exist",
    4: "valid, but not supported yet (or not on this infra)",
    5: "clashes with the current state of a cluster or job",
    6: "no infra could provide the resources",
    7: "talking to a cluster, its agent or a cloud API failed",
    8: "the local state database failed",
    70: "a bug in Styx (`--debug` shows the traceback), or an unexpected cloud state",
    130: "interrupted (Ctrl-C)",
}

_C = Code
CODES: tuple[Code, ...] = (
    # 2: the input is wrong
    _C("invalid-input", 2, "the user's input is wrong"),
    _C("invalid-spec", 2, "a task, DAG or resources description is invalid"),
    _C("invalid-config", 2, "`~/.styx/config.yaml` (or an SSH node pool file) is wrong"),
    _C("gcp-project-missing", 2, "no GCP project in the config, the environment or gcloud"),
    _C("invalid-usage", 2, "command-line flags or arguments are wrong"),
    _C("unknown-command", 2, "`styx WORD` names no command"),
    _C("yaml-syntax", 2, "the text is not YAML (or not UTF-8, or uses an unsupported tag)"),
    _C("duplicate-key", 2, "a YAML mapping has the same key twice"),
    _C("too-complex", 2, "nesting, alias expansion or file size beyond the loader's limits"),
    _C("empty-file", 2, "the file holds no task"),
    _C("file-not-found", 2, "a task or config file does not exist or cannot be read"),
    _C("multiple-tasks", 2, "a file with several tasks (a DAG) was given where one task belongs"),
    _C("unknown-key", 2, "a field name the schema does not know"),
    _C("invalid-type", 2, "a value of the wrong kind"),
    _C("invalid-value", 2, "a value of the right kind that is out of range or malformed"),
    _C("missing-field", 2, "a required field is absent"),
    _C("conflicting-fields", 2, "two fields that cannot be used together"),
    _C("missing-value", 2, "an env or secret declared with a null value got none at launch"),
    _C("dag-cycle", 2, "task dependencies form a cycle"),
    _C("unknown-dependency", 2, "`depends_on` names a task that is not in the file"),
    _C("duplicate-task", 2, "two tasks in one file share a name"),
    _C("unknown-accelerator", 2, "no listed cloud sells an accelerator of that name"),
    _C("env-file-not-found", 2, "the `--env-file` given does not exist"),
    _C("invalid-override", 2, "a command-line override (`--cpus`, `--env`, an env file line)"),
    _C("invalid-env-value", 2, "an env var or secret is too large or not text"),
    _C("workdir-not-found", 2, "the task's workdir does not exist"),
    _C("mount-source-not-found", 2, "a local file mount source does not exist"),
    _C("mount-destination-refused", 2, "a file mount destination Styx must not write to"),
    _C("mount-destination-invalid", 2, "a file mount destination that is not a usable path"),
    _C(
        "k8s-object-rejected",
        2,
        "the Kubernetes API rejected an object (pod_config, image, resources)",
    ),
    _C("invalid-cluster-name", 2, "a cluster name that breaks the name rule (ASCII, letter first)"),
    _C("confirmation-required", 2, "a destructive command without -y and with no terminal"),
    _C("no-enabled-cloud", 2, "`show-gpus` has no enabled cloud with a catalog to list"),
    _C("unknown-infra", 2, "an infra name Styx does not know"),
    _C("ssh-pool-ambiguous", 2, "`--infra ssh` with several SSH node pools and none named"),
    _C("styx-home-unusable", 2, "STYX_HOME cannot be created or is not this user's"),
    _C("invalid-bucket-url", 2, "a bucket URL or bucket name that breaks its store's rules"),
    # 3: not found
    _C("not-found", 3, "a named thing does not exist"),
    _C("cluster-not-found", 3, "no cluster of that name"),
    _C("job-not-found", 3, "no job of that id on the cluster"),
    _C("ssh-pool-not-found", 3, "no SSH node pool of that name"),
    _C("k8s-context-not-found", 3, "no usable Kubernetes context of that name in the kubeconfig"),
    _C("k8s-context-not-allowed", 3, "the context is not in `kubernetes.allowed_contexts`"),
    _C("bucket-not-found", 3, "a bucket a file mount reads does not exist"),
    _C("storage-not-found", 3, "no storage object of that name (`styx storage ls`)"),
    # 4: not supported
    _C("not-supported", 4, "valid, but Styx does not run it yet (or not on this infra)"),
    _C(
        "runtime-python-unavailable", 4, "the node has no fitting Python and Styx has none to bring"
    ),
    _C(
        "container-runtime-missing",
        4,
        "a node has neither a Docker daemon nor podman for the image",
    ),
    _C("store-not-supported", 4, "a bucket store Styx does not reach yet"),
    _C("mount-tool-missing", 4, "a node has no rclone or FUSE for a bucket mount"),
    # 5: conflicts
    _C("conflict", 5, "the request clashes with the state of a cluster or job"),
    _C("cluster-busy", 5, "another Styx command holds the cluster's lock"),
    _C("cluster-not-up", 5, "the cluster is not UP"),
    _C("bucket-name-taken", 5, "another account owns a bucket of that name"),
    _C("storage-in-use", 5, "a storage object is mounted by a cluster"),
    # 6: resources
    _C("resources-unavailable", 6, "no infra could provide the requested resources"),
    _C("managed-job-infeasible", 6, "a managed job could never start: nothing fits it now"),
    _C("no-capacity", 6, "no capacity where it was tried"),
    _C("quota-exceeded", 6, "an account limit of the provider"),
    _C("auth-failed", 6, "the infra refused the credentials"),
    _C("catalog-unavailable", 6, "no copy of a cloud's instance/price catalog can be had"),
    _C("image-not-found", 6, "the image does not exist in the region"),
    _C("network-not-found", 6, "the configured VPC network does not exist"),
    _C("k8s-api-unreachable", 6, "a Kubernetes API server failed or did not answer at launch"),
    _C("k8s-pod-failed", 6, "a pod stopped, vanished or could not start while launching"),
    _C("accelerator-not-offered", 6, "the infra has no machine type for that accelerator"),
    _C("instance-type-not-found", 6, "the instance type does not exist in the region"),
    _C("invalid-disk-tier", 6, "the disk tier cannot be had in the region"),
    _C("no-subnet", 6, "no usable subnet in the region or zone"),
    _C("no-default-vpc", 6, "the region has no default VPC"),
    _C("vpc-not-found", 6, "the configured VPC does not exist in the region"),
    _C("subnet-not-found", 6, "the configured subnet does not exist in the region"),
    # 7: remote
    _C("remote-error", 7, "talking to a cluster's machines or its agent failed"),
    _C("host-unreachable", 7, "a host cannot be reached over SSH"),
    _C("ssh-auth-failed", 7, "the host answered SSH but refused the key or user"),
    _C("agent-error", 7, "the cluster's agent refused or failed a request"),
    _C("agent-unreachable", 7, "the cluster's agent does not answer"),
    _C("agent-protocol-mismatch", 7, "the agent speaks another protocol version"),
    _C("agent-internal", 7, "a bug in the agent (see agent.log on the head node)"),
    _C("agent-storage-failed", 7, "the agent could not write (the head node's disk is full)"),
    _C("invalid-request", 7, "the agent got a malformed request or `agent.json`"),
    _C("invalid-reply", 7, "the agent sent a malformed reply"),
    _C("store-error", 7, "a bucket store refused or failed a request"),
    _C("bucket-access-denied", 7, "the store's credentials may not read or write the bucket"),
    _C("store-credentials-missing", 7, "no credentials for the bucket store"),
    _C("store-unreachable", 7, "the bucket store did not answer"),
    _C("bucket-mount-failed", 7, "copying or mounting a bucket failed on a node"),
    _C("mount-destination-not-empty", 7, "a bucket mount's folder on a node is not empty"),
    _C("job-infeasible", 7, "the job needs more than the cluster has"),
    _C("runtime-down", 7, "the cluster's Ray is gone: `styx start` repairs it"),
    _C("cloud-api-error", 7, "a cloud API call failed"),
    _C("cloud-api-unreachable", 7, "a cloud API cannot be reached"),
    _C("cloud-throttled", 7, "a cloud API throttled the calls"),
    _C("cloud-api-timeout", 7, "a cloud operation did not finish in its deadline"),
    _C("instances-not-running", 7, "a cloud's instances did not reach RUNNING while waited for"),
    _C("registry-login-failed", 7, "a node's login to the task's private image registry failed"),
    _C("image-pull-failed", 7, "a node could not pull the task's container image"),
    _C("container-start-failed", 7, "the task's container did not start on a node"),
    # git workdirs
    _C(
        "invalid-git-url",
        2,
        "a git workdir's URL is malformed or of a scheme git workdirs do not use",
    ),
    _C("git-auth-failed", 2, "the git server asked for credentials or refused them (GIT_TOKEN)"),
    _C(
        "git-ref-not-found",
        3,
        "the git workdir's ref is no branch, tag or commit of the repository",
    ),
    _C(
        "git-workdir-occupied", 5, "the cluster's workdir folder holds files Styx did not put there"
    ),
    _C("git-repo-unreachable", 7, "the git repository cannot be reached, or is not a repository"),
    _C("git-missing", 7, "git is not installed on a node (or on this machine)"),
    _C("git-clone-failed", 7, "cloning or updating the git workdir failed on a node"),
    # services (styx serve)
    _C("no-service-section", 2, "`styx serve` was given a task without a `service:` section"),
    _C("service-port-missing", 2, "a service gives no port its replicas listen on"),
    _C("invalid-service-name", 2, "a service name that is not lower-case letters, digits and '-'"),
    _C("service-not-found", 3, "no service of that name (`styx serve status`)"),
    _C("replica-not-found", 3, "the service has no replica of that id"),
    _C("load-balancer-missing", 4, "HAProxy, the services' load balancer, is not installed here"),
    _C("load-balancer-config", 4, "HAProxy refused the load balancer's configuration (TLS files)"),
    _C("load-balancer-failed", 4, "the load balancer did not start"),
    _C("tls-file-unreadable", 4, "a service's TLS key or certificate cannot be read"),
    _C("service-exists", 5, "a service of that name exists already"),
    _C("service-shutting-down", 5, "the service is being torn down"),
    _C("service-down-timeout", 5, "a service was still shutting down when `serve down` gave up"),
    _C("service-infeasible", 6, "no enabled infra could ever run a replica of the service"),
    _C("no-free-port", 6, "no port is free for the service's load balancer"),
    _C("load-balancer-unreachable", 7, "the load balancer's runtime API did not answer"),
    _C("load-balancer-refused", 7, "the load balancer refused a runtime-API command"),
    # 8: state
    _C("state-error", 8, "the local state database failed"),
    # 70: bugs and unexpected states
    _C("internal", 70, "a bug in Styx"),
    _C("illegal-transition", 70, "a status change the transition table refuses"),
    _C("instance-state", 70, "cloud instances went to an unexpected state while waited for"),
    _C("ssh-keygen-missing", 70, "ssh-keygen is not installed, so no SSH key can be made"),
    _C("ssh-keygen-failed", 70, "ssh-keygen failed to make Styx's SSH key"),
    # 130
    _C("interrupted", 130, "the user interrupted the command"),
)

#: The codes by name.
BY_NAME: dict[str, Code] = {c.name: c for c in CODES}


def is_registered(name: str) -> bool:
    return name in BY_NAME


def markdown() -> str:
    """``docs/exit-codes.md``, as generated from this registry."""
    lines = [
        "# Exit codes",
        "",
        "<!-- Generated from src/styx/codes.py by scripts/gen_exit_codes.py; do not edit. -->",
        "",
        "| exit code | meaning |",
        "|---|---|",
    ]
    lines += [f"| {code} | {meaning} |" for code, meaning in EXIT_CODES.items()]
    lines += [
        "",
        "A job whose own exit code collides with these (for example a job that exits 2) is "
        "reported as",
        "the job's: `launch` prints the job's final status before exiting, so the two cannot be "
        "confused",
        "in the output. Use `styx queue` or `styx logs --status` to read a job's status.",
        "",
        "## Error codes",
        "",
        "Every error prints `Error [CODE]: what happened` and a `Hint:` saying what to do. "
        "The codes are stable.",
        "",
        "| error code | exit code | meaning |",
        "|---|---|---|",
    ]
    lines += [f"| `{c.name}` | {c.exit_code} | {c.meaning} |" for c in CODES]
    return "\n".join(lines) + "\n"
