"""``~/.styx/config.yaml``: SkyPilot's config dialect where the two overlap, plus ``db``.

:func:`load_config` validates the file the same way task files are validated (unknown keys
with a did-you-mean, YAML path and line) but raises :class:`~styx.errors.ConfigError`
(code ``invalid-config``; ``details['reason']`` holds the specific spec code). A task's
``config:`` section uses :data:`TASK_CONFIG`, the subset of keys a task may override.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from typing import Any

from styx.errors import ConfigError, SpecError
from styx.spec.check import Value, root
from styx.spec.frozen import EMPTY, FrozenDict, freeze, thaw
from styx.spec.policies import parse_autostop
from styx.spec.quantities import CLOUDS
from styx.spec.schema import (
    Anything,
    Bool,
    Fields,
    Int,
    ListOf,
    MapOf,
    Null,
    Num,
    OneOf,
    Schema,
    Str,
    unknown_keys_kept,
)
from styx.spec.yamlio import load_documents, read_text


@dataclasses.dataclass(frozen=True, slots=True)
class _Checked(Schema):
    """Validates with one of the typed parsers (resources, autostop); keeps the data."""

    parser: str
    kinds = frozenset({"map", "str", "int", "bool"})

    def check(self, value: Value) -> Any:
        if self.parser == "resources":
            from styx.spec.resources import parse_resources

            if not isinstance(value.raw, dict):
                value.wrong_type("a mapping of resource fields")
            parse_resources(value)
        else:
            parse_autostop(value)
        return value.raw


_ANY_MAP = MapOf(Anything())
_STRS = ListOf(Str())
_NAME_OR_RULES = OneOf((Str(), ListOf(MapOf(Str()))), "a name or a list of {pattern: name}")
_STR_OR_NULL = OneOf((Str(), Null()), "text or null")
_NETWORK = {
    "use_internal_ips": Bool(),
    "ssh_proxy_command": OneOf((Str(), Null(), MapOf(_STR_OR_NULL)), "a command or a mapping"),
    "labels": MapOf(Str()),
    "capabilities": ListOf(Str(choices=("compute", "storage"))),
}
_SUBNETS = OneOf((Str(), Null(), _STRS), "a name or a list of names")
_AWS = Fields(
    {
        **_NETWORK,
        "prioritize_reservations": Bool(),
        "specific_reservations": _STRS,
        "disk_encrypted": Bool(),
        "ssh_user": Str(),
        "security_group_name": _NAME_OR_RULES,
        "vpc_name": _STR_OR_NULL,
        "vpc_names": _SUBNETS,
        "subnet_names": _SUBNETS,
        "use_ssm": Bool(),
        "post_provision_runcmd": ListOf(OneOf((Str(), _STRS), "a command")),
        "enforce_tags": ListOf(Str(choices=("instance", "volume"))),
        "remote_identity": _NAME_OR_RULES,
    }
)
_REMOTE_IDENTITY = Str(choices=("LOCAL_CREDENTIALS", "SERVICE_ACCOUNT", "NO_UPLOAD"))
_GCP = Fields(
    {
        **_NETWORK,
        "prioritize_reservations": Bool(),
        "specific_reservations": _STRS,
        "managed_instance_group": Fields(
            {"run_duration": Int(minimum=1), "provision_timeout": Int(minimum=0)},
            required=("run_duration",),
        ),
        "force_enable_external_ips": Bool(),
        "enable_gvnic": Bool(),
        "enable_gpu_direct": Bool(),
        "placement_policy": Str(),
        "vpc_name": _STR_OR_NULL,
        "subnet_names": _SUBNETS,
        "remote_identity": _REMOTE_IDENTITY,
        # Styx's own keys (SkyPilot reads the project and user elsewhere):
        "project_id": Str(),
        "ssh_user": Str(),
    }
)
_AZURE = Fields(
    {
        **_NETWORK,
        "storage_account": Str(),
        "resource_group_vm": Str(),
        "vpc_name": _STR_OR_NULL,
        "remote_identity": _NAME_OR_RULES,
    }
)
_CONTEXT_MINIMAL = {
    "pod_config": _ANY_MAP,
    "provision_timeout": Int(minimum=-1),
    "max_inline_command_length": Int(minimum=1024),
    "custom_metadata": _ANY_MAP,
}
_KUBERNETES_CONTEXT = {
    **_CONTEXT_MINIMAL,
    "allowed_nodes": Fields({"label_selector": MapOf(Str()), "names": _STRS, "ips": _STRS}),
    "rdma": Fields({"mode": Str(), "resource": Str(), "networks": Str()}),
    "networking": Str(choices=("portforward", "nodeport")),
    "ports": Str(choices=("loadbalancer", "ingress", "podip")),
    "namespace": Str(),
    "autoscaler": Str(),
    "high_availability": Fields({"storage_class_name": Str()}),
    "kueue": Fields({"local_queue_name": Str(), "admission_timeout": Int(minimum=-1)}),
    "quota": _ANY_MAP,
    "dws": Fields({"enabled": Bool(), "max_run_duration": OneOf((Str(), Int()), "a duration")}),
    "remote_identity": OneOf((Str(), MapOf(Str())), "a name or a mapping"),
    "post_provision_runcmd": _STRS,
    "apt_mirrors": _STRS,
    "set_pod_resource_limits": OneOf((Bool(), Num(minimum=1)), "true, false or a multiplier"),
    "pricing": _ANY_MAP,
    "auto_mounts": ListOf(_ANY_MAP),
    "enable_docker": OneOf((Bool(), Str(choices=("ALL", "BUILD")), _ANY_MAP), "true or a mode"),
}
_ALLOWED = OneOf((_STRS, Str(pattern="all", expected="'all'")), "a list of names or 'all'")
_KUBERNETES = Fields(
    {
        **_KUBERNETES_CONTEXT,
        "allowed_contexts": _ALLOWED,
        "context_configs": MapOf(Fields(_KUBERNETES_CONTEXT)),
    }
)
#: Styx's own: what a node of this machine or of an SSH pool costs per hour (default 0), for
#: the optimizer and ``styx cost-report``, as SkyPilot lets Kubernetes clusters be priced.
_HOURLY_PRICE = Num(minimum=0)
_SSH = Fields(
    {
        **_CONTEXT_MINIMAL,
        "allowed_node_pools": _STRS,
        "hourly_price": _HOURLY_PRICE,
        "context_configs": MapOf(Fields({**_CONTEXT_MINIMAL, "hourly_price": _HOURLY_PRICE})),
    }
)


def _controller(extra: Mapping[str, Schema] | None = None) -> Fields:
    controller = Fields(
        {
            "resources": _Checked("resources"),
            "high_availability": Bool(),
            "autostop": _Checked("autostop"),
            "consolidation_mode": Bool(),
            "controller_logs_gc_retention_hours": Int(),
            "task_logs_gc_retention_hours": Int(),
        }
    )
    bucket = Str(pattern=r"(https|s3|gs|r2|cos)://.+", expected="a bucket URL such as s3://b")
    fields: dict[str, Schema] = {
        "controller": controller,
        "bucket": bucket,
        "force_disable_cloud_bucket": Bool(),
    }
    return Fields({**fields, **(extra or {})})


# Sections Styx accepts so SkyPilot configs load, but does not use or check in depth.
_LOOSE_SECTIONS = (
    "workspaces", "workspace_config", "rbac", "daemons", "data", "dashboard", "metrics",
    "plugins", "slurm", "oci", "vast", "nebius",
)  # fmt: skip

CONFIG = Fields(
    {
        "db": Str(
            pattern=r"[A-Za-z][A-Za-z0-9+.-]*://.*",
            expected="a database URL such as sqlite:///path or postgresql://host/db",
        ),
        "allowed_clouds": ListOf(Str(choices=(*CLOUDS, "cloudflare"))),
        "aws": _AWS,
        "gcp": _GCP,
        "azure": _AZURE,
        "kubernetes": _KUBERNETES,
        "ssh": _SSH,
        # Styx's own: host folders a local cluster's file mounts may write to, and a price.
        "local": Fields(
            {
                "allowed_host_paths": ListOf(Str(pattern=r"[/~].*", expected="an absolute path")),
                "hourly_price": _HOURLY_PRICE,
            }
        ),
        "jobs": _controller(
            {
                "status_check": Fields(
                    {"min_elapsed_seconds": Num(minimum=0), "min_retries": Int(minimum=0)}
                )
            }
        ),
        "serve": _controller(),
        "docker": Fields({"run_options": OneOf((Str(), _STRS), "text or a list of options")}),
        "nvidia_gpus": Fields({"disable_ecc": Bool()}),
        "provision": Fields({"ssh_timeout": Int(minimum=1), "install_conda": Bool()}),
        "admin_policy": Str(
            pattern=r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)+|https?://.*",
            expected="a Python module path (pkg.module.Policy) or an http(s) URL",
        ),
        "api_server": _ANY_MAP,
        "logs": Fields(
            {"store": Str(choices=("gcp", "aws")), "gcp": _ANY_MAP, "aws": _ANY_MAP},
            required=("store",),
        ),
        "workspace": Str(),
        "active_workspace": Str(),
        **{key: _ANY_MAP for key in _LOOSE_SECTIONS},
    }
)

#: What a task's ``config:`` may override (SkyPilot's task-overridable keys).
TASK_CONFIG = Fields(
    {
        "docker": Fields({"run_options": OneOf((Str(), _STRS), "text or a list of options")}),
        "nvidia_gpus": Fields({"disable_ecc": Bool()}),
        "ssh": Fields({"pod_config": _ANY_MAP}),
        "kubernetes": Fields(
            {
                k: _KUBERNETES_CONTEXT[k]
                for k in ("custom_metadata", "pod_config", "provision_timeout", "dws", "kueue")
            }
        ),
        "gcp": Fields(
            {
                k: _GCP.fields[k]
                for k in (
                    "managed_instance_group",
                    "enable_gvnic",
                    "enable_gpu_direct",
                    "placement_policy",
                )
            }
        ),
        "hooks": ListOf(
            Fields(
                {
                    "run": Str(),
                    "events": ListOf(Str(choices=("stop", "preemption", "down"))),
                    "timeout": Int(minimum=1),
                },
                required=("run",),
            )
        ),
    }
)


def parse_task_config(v: Value) -> FrozenDict[str, Any]:
    """Validate a task's ``config:`` section."""
    result: FrozenDict[str, Any] = freeze(TASK_CONFIG.check(v))
    return result


@dataclasses.dataclass(frozen=True, slots=True)
class Config:
    """A validated config; read values with :meth:`get` (``config.get("aws.vpc_name")``)."""

    data: FrozenDict[str, Any] = EMPTY
    file: str | None = None
    #: Keys Styx does not know (newer SkyPilot keys, most likely), skipped with a warning;
    #: not part of the config's value (equal configs may come from files with other extras).
    ignored: tuple[str, ...] = dataclasses.field(default=(), compare=False)

    @classmethod
    def from_dict(cls, data: Any, *, file: str | None = None) -> Config:
        """Validate config data (None is an empty config); raise ConfigError if invalid."""
        if data is None:
            return cls(EMPTY, file)
        with unknown_keys_kept() as ignored:
            checked = CONFIG.check(root(data, file=file, config=True))
        return cls(freeze(checked), file, tuple(ignored))

    def warnings(self) -> list[str]:
        """One line per key of the file that Styx skipped."""
        where = f" in {self.file}" if self.file else ""
        return [
            f"Config key '{key}'{where} is not one Styx knows (a newer SkyPilot key?); "
            "it is ignored."
            for key in self.ignored
        ]

    def get(self, key: str, default: Any = None) -> Any:
        """The value at a dotted key, or ``default`` where any part is missing."""
        node: Any = self.data
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                return default
            node = node[part]
        return thaw(node)

    def to_dict(self) -> dict[str, Any]:
        """The validated config as plain data."""
        result: dict[str, Any] = thaw(self.data)
        return result

    def merged(self, overrides: Mapping[str, Any]) -> Config:
        """This config with ``overrides`` (a task's ``config:``) deep-merged on top."""

        merged = freeze(_deep_merge(thaw(self.data), thaw(overrides)))
        return Config(merged, self.file, self.ignored)


def _deep_merge(base: Any, top: Any) -> Any:
    if isinstance(base, dict) and isinstance(top, dict):
        out = dict(base)
        for key, value in top.items():
            out[key] = _deep_merge(base.get(key), value)
        return out
    return base if top is None else top


def load_config(path: str | os.PathLike[str] | None = None) -> Config:
    """Read and validate the config file (default ``$STYX_HOME/config.yaml``).

    A missing file is an empty config; an invalid one raises ConfigError with its line.
    """
    if path is None:
        from styx import paths

        path = paths.config_file()
    name = os.fspath(path)
    if not os.path.exists(name):
        return Config(EMPTY, name)
    try:
        documents = load_documents(read_text(name), file=name)
    except SpecError as exc:
        raise ConfigError(
            exc.message, exc.hint, location=exc.location, details={"reason": exc.code}
        ) from None
    if len(documents) > 1:
        raise ConfigError(
            "The config file holds several YAML documents.",
            "Keep one document in the config file.",
            details={"reason": "invalid-value"},
        )
    document = documents[0] if documents else None
    if document is None or document.data is None:
        return Config(EMPTY, name)
    value = root(document.data, file=name, positions=document.positions, config=True)
    with unknown_keys_kept() as ignored:
        checked = CONFIG.check(value)
    return Config(freeze(checked), name, tuple(ignored))
