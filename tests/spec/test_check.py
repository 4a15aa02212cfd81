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


def test_json_field_readers_report_the_field_path() -> None:
    v = root({"n": 3, "name": "x", "tags": ["a"], "env": {"A": "1"}}, prefix=("job",)).obj(
        ("n", "name", "tags", "env", "opt")
    )
    assert (v.integer_at("n"), v.text_at("name"), v.texts_at("tags")) == (3, "x", ["a"])
    assert v.text_map_at("env") == {"A": "1"} and v.opt_text_at("opt") is None
    assert v.number_at("n") == 3.0 and v.boolean_at("missing", False) is False
    with pytest.raises(SpecError) as caught:
        v.text_at("n")
    assert caught.value.code == "invalid-type" and caught.value.location is not None
    assert caught.value.location.path == "job.n"
    with pytest.raises(SpecError) as caught:
        v.integer_at("absent")
    assert caught.value.code == "missing-field"
    with pytest.raises(SpecError) as caught:
        root({"nmae": 1}).obj(("name",))
    assert caught.value.code == "unknown-key" and "name" in caught.value.hint
