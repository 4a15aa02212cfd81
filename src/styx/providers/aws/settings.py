"""The ``aws:`` section of ``~/.styx/config.yaml`` (SkyPilot's keys), read once per provider.

=========================  ===============================================================
key                        meaning here
=========================  ===============================================================
``vpc_name``               the VPC (by its ``Name`` tag) to launch into; default: the
``vpc_names``              region's default VPC. Either key; a list is tried in order.
``subnet_names``           only these subnets (by ``Name`` tag, or subnet ids)
``use_internal_ips``       reach nodes on their private IPs (else the public IP, if any)
``ssh_user``               the login user of the image (default ``ubuntu``)
``ssh_proxy_command``      ProxyCommand for SSH to the nodes; a string, or per region
``security_group_name``    a name, or ``[{cluster-pattern: name}, ...]``; default
                           ``styx-<cluster>``
``labels``                 extra tags on instances
``disk_encrypted``         encrypt the root volume
``post_provision_runcmd``  commands run by cloud-init at first boot (user data)
=========================  ===============================================================
"""

from __future__ import annotations

import dataclasses
import fnmatch
import shlex
from collections.abc import Mapping
from typing import Any

DEFAULT_SSH_USER = "ubuntu"


def _names(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    return tuple(str(v) for v in value)


@dataclasses.dataclass(frozen=True, slots=True)
class AWSSettings:
    """The AWS config keys Styx uses, with their defaults."""

    vpc_names: tuple[str, ...] = ()
    subnet_names: tuple[str, ...] = ()
    use_internal_ips: bool = False
    ssh_user: str = DEFAULT_SSH_USER
    ssh_proxy_command: str | Mapping[str, str | None] | None = None
    security_group_name: str | tuple[Mapping[str, str], ...] | None = None
    labels: Mapping[str, str] = dataclasses.field(default_factory=dict)
    disk_encrypted: bool = False
    post_provision_runcmd: tuple[str | tuple[str, ...], ...] = ()

    @classmethod
    def from_mapping(cls, aws: Mapping[str, Any] | None) -> AWSSettings:
        """Settings from the (validated) ``aws:`` mapping; None or {} gives the defaults."""
        aws = aws or {}
        group = aws.get("security_group_name")
        runcmd = tuple(
            c if isinstance(c, str) else tuple(str(w) for w in c)
            for c in aws.get("post_provision_runcmd") or ()
        )
        return cls(
            vpc_names=_names(aws.get("vpc_names")) + _names(aws.get("vpc_name")),
            subnet_names=_names(aws.get("subnet_names")),
            use_internal_ips=bool(aws.get("use_internal_ips", False)),
            ssh_user=str(aws.get("ssh_user") or DEFAULT_SSH_USER),
            ssh_proxy_command=aws.get("ssh_proxy_command"),
            security_group_name=group if isinstance(group, str | None) else tuple(group),
            labels={str(k): str(v) for k, v in (aws.get("labels") or {}).items()},
            disk_encrypted=bool(aws.get("disk_encrypted", False)),
            post_provision_runcmd=runcmd,
        )

    @classmethod
    def load(cls) -> AWSSettings:
        """Settings from the user's config file."""
        from styx.config import user_config

        config = user_config()
        return cls.from_mapping(config.get("aws") if config is not None else None)

    def security_group_for(self, cluster_name: str) -> str | None:
        """The configured security group name for a cluster; None means Styx's own."""
        group = self.security_group_name
        if group is None or isinstance(group, str):
            return group
        for rule in group:
            for pattern, name in rule.items():
                if fnmatch.fnmatchcase(cluster_name, pattern):
                    return name
        return None

    def proxy_command(self, region: str) -> str | None:
        """The ProxyCommand for nodes in ``region``, if any."""
        command = self.ssh_proxy_command
        if command is None or isinstance(command, str):
            return command
        return command.get(region)

    def user_data(self) -> str | None:
        """cloud-init user data running ``post_provision_runcmd``; None when there is none."""
        if not self.post_provision_runcmd:
            return None
        lines = ["#cloud-config", "runcmd:"]
        for command in self.post_provision_runcmd:
            line = command if isinstance(command, str) else shlex.join(command)
            lines.append(f"  - {_yaml_quote(line)}")
        return "\n".join(lines) + "\n"


def _yaml_quote(text: str) -> str:
    import json

    return json.dumps(text)  # a JSON string is a valid YAML flow scalar
