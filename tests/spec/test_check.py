from __future__ import annotations

import pytest

from styx.errors import ConfigError, SpecError
from styx.spec.check import Value, describe, root, suggest


def test_describe_is_short() -> None:
    assert describe(None) == "empty (null)"
    assert describe(True) == "the boolean true"
    assert describe("x" * 100) == "a long text"
    assert describe([1]) == "a list" and describe({}) == "a mapping"
    assert describe(10**40).endswith("...")


def test_suggest() -> None:
    assert suggest("acelerators", ["accelerators", "cpus"]) == "accelerators"
    assert suggest("CPUS", ["accelerators", "cpus"]) == "cpus"
    assert suggest("zzz", ["accelerators", "cpus"]) is None


def test_unknown_key_suggests_and_lists() -> None:
    with pytest.raises(SpecError) as info:
        root({"cpu": 1}).fields(["cpus", "memory"])
    assert info.value.code == "unknown-key"
    assert info.value.hint == "Did you mean 'cpus'?"
    assert info.value.details["suggestion"] == "cpus"
    with pytest.raises(SpecError) as info:
        root({"zzz": 1}).fields(["cpus", "memory"])
    assert "cpus, memory" in info.value.hint


def test_null_fields_count_as_absent() -> None:
    assert root({"cpus": None, "memory": 4}).fields(["cpus", "memory"]).keys() == {"memory"}


@pytest.mark.parametrize(
    ("raw", "method", "code"),
    [
        (True, "integer", "invalid-type"),
        (1.0, "integer", "invalid-type"),
        (-1, "integer", "invalid-value"),
        (float("nan"), "number", "invalid-value"),
        ("1", "number", "invalid-type"),
        (1, "boolean", "invalid-type"),
        (5, "string", "invalid-type"),
        ("  ", "string", "invalid-value"),
    ],
)
def test_scalar_checks(raw: object, method: str, code: str) -> None:
    value = Value(raw, ("x",))
    with pytest.raises(SpecError) as info:
        getattr(value, method)(**({"minimum": 0} if method == "integer" else {}))
    assert info.value.code == code


def test_choice_is_case_insensitive_and_canonical() -> None:
    assert Value("Mount_Cached").choice(("MOUNT", "MOUNT_CACHED")) == "MOUNT_CACHED"
    with pytest.raises(SpecError) as info:
        Value("MOUNTED", ("mode",)).choice(("MOUNT", "COPY"))
    assert info.value.hint == "Did you mean 'MOUNT'?"


def test_config_source_raises_config_error_with_reason() -> None:
    with pytest.raises(ConfigError) as info:
        root({"x": 1}, file="c.yaml", config=True).fields(["y"])
    assert info.value.code == "invalid-config"
    assert info.value.details["reason"] == "unknown-key"


def test_secret_values_are_never_quoted() -> None:
    with pytest.raises(SpecError) as info:
        Value("hunter2", ("secrets", "PW"), secret=True).boolean()
    assert "hunter2" not in str(info.value.to_dict())
