"""The ``gcp:`` section of ``~/.styx/config.yaml`` (SkyPilot's keys), read once per provider.

=========================  ===============================================================
key                        meaning here
=========================  ===============================================================
``project_id``             the project to launch in; default: the credentials' project,
                           then ``GOOGLE_CLOUD_PROJECT`` / ``CLOUDSDK_CORE_PROJECT``, then
                           gcloud's active configuration
``vpc_name``               the VPC network to launch into (default ``default``)
``subnet_names``           only these subnetworks (by name)
``use_internal_ips``       reach nodes on their internal IPs, and give them no external IP
``ssh_user``               the login user (default ``gcpuser``, set up through metadata)
``ssh_proxy_command``      ProxyCommand for SSH to the nodes; a string, or per region
``labels``                 extra labels on instances and disks
``force_enable_external_ips``  an external IP even with ``use_internal_ips``
=========================  ===============================================================
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

DEFAULT_SSH_USER = "gcpuser"
DEFAULT_NETWORK = "default"


def _names(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    return tuple(str(v) for v in value)


@dataclasses.dataclass(frozen=True, slots=True)
class GCPSettings:
    """The GCP config keys Styx uses, with their defaults."""

    project_id: str | None = None
    vpc_name: str = DEFAULT_NETWORK
    subnet_names: tuple[str, ...] = ()
    use_internal_ips: bool = False
    ssh_user: str = DEFAULT_SSH_USER
    ssh_proxy_command: str | Mapping[str, str | None] | None = None
    labels: Mapping[str, str] = dataclasses.field(default_factory=dict)
    force_external_ips: bool = False

    @classmethod
    def from_mapping(cls, gcp: Mapping[str, Any] | None) -> GCPSettings:
        """Settings from the (validated) ``gcp:`` mapping; None or {} gives the defaults."""
        gcp = gcp or {}
        return cls(
            project_id=str(gcp["project_id"]) if gcp.get("project_id") else None,
            vpc_name=str(gcp.get("vpc_name") or DEFAULT_NETWORK),
            subnet_names=_names(gcp.get("subnet_names")),
            use_internal_ips=bool(gcp.get("use_internal_ips", False)),
            ssh_user=str(gcp.get("ssh_user") or DEFAULT_SSH_USER),
            ssh_proxy_command=gcp.get("ssh_proxy_command"),
            labels={str(k): str(v) for k, v in (gcp.get("labels") or {}).items()},
            force_external_ips=bool(gcp.get("force_enable_external_ips", False)),
        )

    @classmethod
    def load(cls) -> GCPSettings:
        """Settings from the user's config file."""
        from styx.config import user_config

        config = user_config()
        return cls.from_mapping(config.get("gcp") if config is not None else None)

    @property
    def external_ips(self) -> bool:
        """Whether instances get an external (public) IP."""
        return self.force_external_ips or not self.use_internal_ips

    def proxy_command(self, region: str) -> str | None:
        """The ProxyCommand for nodes in ``region``, if any."""
        command = self.ssh_proxy_command
        if command is None or isinstance(command, str):
            return command
        return command.get(region)
