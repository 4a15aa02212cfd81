"""Limits of a task's environment and scripts, checked when the task is read (styx.spec.limits)."""

from __future__ import annotations

from pathlib import Path

import pytest

from styx.errors import SpecError
from styx.spec import limits
from styx.spec.overrides import Overrides, apply, read_env_file
from styx.spec.support import check_launchable
from styx.spec.task import Task


def test_an_env_value_up_to_the_kernels_limit_is_fine_and_one_byte_more_is_not() -> None:
    name = "BIG"
    fits = "v" * (limits.ENV_VAR_MAX_BYTES - len(name) - 2)
    assert limits.env_problem(name, fits) is None
    Task.from_yaml_str(f"envs:\n  {name}: {fits}\nrun: echo\n")
    with pytest.raises(SpecError) as info:
        Task.from_yaml_str(f"envs:\n  {name}: {fits}v\nrun: echo\n")
    assert info.value.code == "invalid-env-value" and "128 KiB" in info.value.message
    assert info.value.location is not None and info.value.location.path == "envs.BIG"


def test_multibyte_values_count_in_bytes() -> None:
    value = "é" * (limits.ENV_VAR_MAX_BYTES // 2)  # fewer characters than bytes
    assert limits.env_problem("E", value) is not None


def test_flags_and_env_files_are_checked_the_same_way(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as info:
        apply(Task(run="x"), Overrides(env=("A=" + "v" * 200_000,)))
    assert info.value.code == "invalid-env-value"
    with pytest.raises(SpecError) as info:
        apply(Task(run="x"), Overrides(secret=("S=" + "v" * 200_000,)))
    assert info.value.code == "invalid-env-value"
    assert "v" * 10 not in info.value.message  # a secret's value is never quoted
    env_file = tmp_path / "e.env"
    env_file.write_text("OK=1\nBIG=" + "v" * 200_000 + "\n")
    with pytest.raises(SpecError) as info:
        read_env_file(str(env_file))
    assert info.value.code == "invalid-env-value" and info.value.location.line == 2  # type: ignore[union-attr]


def test_all_envs_together_are_bounded() -> None:
    chunk = "v" * 100_000
    envs = "".join(f"  E{i}: {chunk}\n" for i in range(11))  # 1.1 MB in all, each one fine
    task = Task.from_yaml_str("envs:\n" + envs + "run: echo\n")
    with pytest.raises(SpecError) as info:
        check_launchable(task)
    assert info.value.code == "invalid-env-value" and "together" in info.value.message


def test_nul_bytes_are_refused_where_they_cannot_go() -> None:
    for text, path in (
        ('envs:\n  A: "x\\0y"\n', "envs.A"),
        ('secrets:\n  S: "x\\0y"\n', "secrets.S"),
        ('run: "a\\0b"\n', "run"),
        ('setup: "a\\0b"\n', "setup"),
    ):
        with pytest.raises(SpecError) as info:
            Task.from_yaml_str(text)
        assert info.value.location is not None and info.value.location.path == path, text


def test_scripts_are_bounded_but_large() -> None:
    assert limits.script_problem("run", "x" * (limits.SCRIPT_MAX_BYTES)) is None
    assert limits.script_problem("run", "x" * (limits.SCRIPT_MAX_BYTES + 1)) is not None
