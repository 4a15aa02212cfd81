"""Job logs when the disk is full: the log stops, says why once, and never raises."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from styx.agent.logs import RUN_LOG, JobLog


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
@pytest.mark.parametrize("nodes", [["h1"], ["h1", "h2"]])
def test_a_full_disk_stops_the_log_and_reports_once(tmp_path: Path, nodes: list[str]) -> None:
    (tmp_path / RUN_LOG).symlink_to("/dev/full")  # every write: ENOSPC
    errors: list[str] = []
    writes: list[int] = []
    log = JobLog(tmp_path, nodes, lambda: writes.append(1), errors.append)
    for _ in range(3):
        log.write(0, b"line\n")
        log.note("a note")
    log.end_part(0)
    log.close()
    assert len(errors) == 1 and "No space left on device" in errors[0]
    assert log.error == errors[0]


def test_a_log_folder_that_cannot_be_made_is_an_error_not_a_crash(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    errors: list[str] = []
    log = JobLog(blocker / "logs", ["h1"], lambda: None, errors.append)
    log.write(0, b"x")
    log.close()
    assert len(errors) == 1 and log.error is not None
