"""Managed jobs keep secret values out of the state database, and drop them when they end."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from styx.jobs import secrets
from styx.jobs.submit import submit
from styx.spec.dag import Dag
from styx.spec.task import Task
from styx.state.db import Database
from styx.state.managed_jobs import get_managed_job


def test_submit_stores_secrets_redacted_and_in_a_private_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STYX_HOME", str(tmp_path))
    db = Database.open(f"sqlite:///{tmp_path / 'state.db'}")
    task = Task.from_yaml_str("run: echo hi\nsecrets:\n  HF_TOKEN: hf_verysecret\n")
    _, (job_id,) = submit(db, Dag.from_yaml_str(task.to_yaml()))
    record = get_managed_job(db, job_id)
    assert record is not None
    assert "hf_verysecret" not in json.dumps(record.spec)
    assert record.spec["secrets"] == {"HF_TOKEN": secrets.REDACTED}
    assert b"hf_verysecret" not in (tmp_path / "state.db").read_bytes()
    path = tmp_path / "jobs" / "secrets" / f"{job_id}.json"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    restored = secrets.restore(job_id, record.spec)
    assert Task.from_dict(restored).secrets["HF_TOKEN"].reveal() == "hf_verysecret"
    secrets.forget(job_id)
    assert not path.exists()
