"""Every file in broken/ must fail with the code, YAML path and line in its first line:

    # expect: <code> <yaml path or -> line <number or ->

and never with anything but a SpecError carrying a one-sentence message and hint.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from styx.errors import SpecError
from styx.spec.dag import Dag
from styx.spec.task import Task

BROKEN = Path(__file__).parent / "broken"
FILES = sorted(BROKEN.glob("*.yaml"))
_EXPECT = re.compile(rb"# expect: (\S+) (\S+) line (\S+)")


def expectation(path: Path) -> tuple[str, str | None, int | None]:
    match = _EXPECT.match(path.read_bytes().split(b"\n", 1)[0])
    assert match, f"{path.name} lacks an '# expect:' first line"
    code, where, line = (m.decode() for m in match.groups())
    return code, None if where == "-" else where, None if line == "-" else int(line)


def test_there_are_enough_broken_files() -> None:
    assert len(FILES) >= 40


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_broken_file_fails_with_its_expected_error(path: Path) -> None:
    code, where, line = expectation(path)
    with pytest.raises(SpecError) as info:
        Dag.from_yaml(path)
    error = info.value
    assert (error.code, error.location and error.location.path) == (code, where), str(error)
    assert error.location is not None and error.location.line == line, str(error)
    assert error.location.file == str(path)
    assert error.message.endswith(".") and error.hint.endswith((".", "?")), error.to_dict()
    assert "Traceback" not in str(error)


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_task_reader_fails_too(path: Path) -> None:
    with pytest.raises(SpecError):
        Task.from_yaml(path)
