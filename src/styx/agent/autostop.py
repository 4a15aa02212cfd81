"""Autostop with SkyPilot's semantics.

The cluster is idle when no job is PENDING, SETTING_UP or RUNNING and no client is following
a job's output (a `styx launch` that streams its job, say: stopping under it would cut it off
before it read the job's end), nor has for ``FOLLOWER_GRACE_S``. It has been idle since the
latest of: the end of its last job, the moment the current autostop setting was made (setting
autostop resets the idle timer, as ``sky autostop`` does) and the agent's start. Once it has been
idle for ``idle_minutes`` the agent runs the provider's ``stop_command`` (or ``down_command`` when
``down``) in a session of its own, so the command outlives the agent it may stop, and records the
event in ``jobs.db``. A failed command is retried after another idle period.

``STYX_AGENT_MINUTE_S`` (seconds per minute, default 60) is a hidden knob that lets tests use
short idle periods.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from styx.agent.db import JobStore
from styx.agent.protocol import AgentConfig, AutostopConfig

log = logging.getLogger(__name__)

MINUTE_ENV = "STYX_AGENT_MINUTE_S"
_META_KEY = "autostop"


#: How long after the last follower of a job's output the cluster still counts as busy: time
#: for the follower to read the end it was sent before the machines go.
FOLLOWER_GRACE_S = 5.0


class Autostop:
    """The autostop setting, the idle clock and the firing of the stop command."""

    def __init__(self, store: JobStore, config: AgentConfig, log_path: Path) -> None:
        self._store = store
        self._config = config
        self._log_path = log_path
        self.minute_s = float(os.environ.get(MINUTE_ENV, "60"))
        self._started = time.time()
        self._last_busy = store.last_job_end() or 0.0
        self.fired_at: float | None = None
        saved: dict[str, Any] | None = store.get_meta(_META_KEY)
        from_file = {"idle_minutes": config.autostop.idle_minutes, "down": config.autostop.down}
        if saved is None or saved.get("from_file") != from_file:
            # First start, or the provisioner wrote a new setting into agent.json: adopt it.
            self._save(config.autostop, from_file)
        else:
            self.setting = AutostopConfig(saved["idle_minutes"], bool(saved["down"]))
            self.set_at = float(saved["set_at"])

    def _save(self, setting: AutostopConfig, from_file: dict[str, Any]) -> None:
        self.setting = setting
        self.set_at = time.time()
        self.fired_at = None
        self._store.set_meta(
            _META_KEY,
            {
                "idle_minutes": setting.idle_minutes,
                "down": setting.down,
                "set_at": self.set_at,
                "from_file": from_file,
            },
        )

    def set(self, idle_minutes: int | None, down: bool) -> AutostopConfig:
        """Change the setting; this resets the idle timer."""
        saved = self._store.get_meta(_META_KEY) or {}
        self._save(AutostopConfig(idle_minutes, down), saved.get("from_file", {}))
        self._store.record_event("autostop_set", {"idle_minutes": idle_minutes, "down": down})
        return self.setting

    def busy(self, grace_s: float = 0.0) -> None:
        """Called whenever the cluster has an active job (or reader); with ``grace_s``, the
        cluster counts as busy that much longer."""
        self._last_busy = max(self._last_busy, time.time() + grace_s)

    def idle_since(self) -> float:
        return max(self._last_busy, self.set_at, self._started)

    def due(self, idle: bool, now: float | None = None) -> bool:
        minutes = self.setting.idle_minutes
        if minutes is None or not idle or self.fired_at is not None:
            return False
        now = time.time() if now is None else now
        return now - self.idle_since() >= minutes * self.minute_s

    async def loop(self, is_idle: Callable[[], bool]) -> None:
        """Check every second (or faster with a short test minute) and fire when due."""
        period = max(0.05, min(1.0, self.minute_s / 20))
        while True:
            await asyncio.sleep(period)
            idle = is_idle()
            if not idle:
                self.busy()
            elif self.due(idle):
                await self.fire()

    async def fire(self) -> None:
        down = self.setting.down
        argv = self._config.down_command if down else self._config.stop_command
        self.fired_at = time.time()
        event = {
            "action": "down" if down else "stop",
            "command": argv,
            "idle_minutes": self.setting.idle_minutes,
            "idle_since": self.idle_since(),
        }
        self._store.record_event("autostop", event)
        if not argv:
            log.warning("autostop is due but agent.json has no %s command", event["action"])
            return
        log.info("autostop: running %s", argv)
        with open(self._log_path, "ab") as out:
            try:
                proc = await asyncio.create_subprocess_exec(
                    *argv,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=out,
                    stderr=out,
                    start_new_session=True,
                )
                rc = await proc.wait()
            except OSError as e:
                rc = 127
                out.write(f"autostop: cannot run {argv}: {e}\n".encode())
        self._store.record_event("autostop_done", {"rc": rc})
        if rc != 0:
            self.fired_at = None
            self.set_at = time.time()  # retry after another idle period
