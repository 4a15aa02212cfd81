"""The files of an agent root folder (ROOT): ``agent.json``, ``agent.sock``, ``jobs.db``, ..."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from styx.agent.protocol import CONFIG_NAME


@dataclasses.dataclass(frozen=True, slots=True)
class AgentPaths:
    """The files of an agent root folder."""

    root: Path

    @property
    def config(self) -> Path:
        return self.root / CONFIG_NAME

    @property
    def socket(self) -> Path:
        return self.root / "agent.sock"

    @property
    def pid(self) -> Path:
        return self.root / "agent.pid"

    @property
    def supervisor_pid(self) -> Path:
        return self.root / "supervisor.pid"

    @property
    def db(self) -> Path:
        return self.root / "jobs.db"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def secrets(self) -> Path:
        return self.root / "secrets"

    @property
    def agent_log(self) -> Path:
        return self.root / "agent.log"

    @property
    def stopping(self) -> Path:
        """Present while the agent is being stopped on purpose (the supervisor then quits)."""
        return self.root / "stopping"


def agent_id(root: Path, cluster_name: str) -> str:
    """A short id for one cluster's agent; job processes carry it in their marker."""
    import hashlib

    ident = f"{root.resolve()}|{cluster_name}"
    return hashlib.sha1(ident.encode()).hexdigest()[:10]
