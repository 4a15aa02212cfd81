"""Typed readers for JSON objects: each returns the field's value or raises the protocol's
``invalid-request`` :class:`~styx.errors.AgentError`."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from styx.errors import AgentError


def invalid(message: str) -> AgentError:
    """The typed error for a malformed request or reply."""
    return AgentError(
        message, "Upgrade Styx on both ends so they speak one protocol.", code="invalid-request"
    )


def f_obj(value: object, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise invalid(f"{what} must be a JSON object, not {type(value).__name__}.")
    return value


def f_check_keys(d: Mapping[str, Any], cls: type[Any], strict: bool) -> None:
    if strict:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise invalid(f"Unknown field(s) {unknown} in {cls.__name__}.")


def f_str(d: Mapping[str, Any], key: str, default: str | None = None) -> str:
    value = d.get(key, default)
    if not isinstance(value, str):
        raise invalid(f"Field '{key}' must be a string.")
    return value


def f_opt_str(d: Mapping[str, Any], key: str) -> str | None:
    value = d.get(key)
    if value is not None and not isinstance(value, str):
        raise invalid(f"Field '{key}' must be a string or null.")
    return value


def f_num(d: Mapping[str, Any], key: str, default: float | None = None) -> float:
    value = d.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise invalid(f"Field '{key}' must be a number.")
    return float(value)


def f_opt_num(d: Mapping[str, Any], key: str) -> float | None:
    return None if d.get(key) is None else f_num(d, key)


def f_int(d: Mapping[str, Any], key: str, default: int | None = None) -> int:
    value = d.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise invalid(f"Field '{key}' must be an integer.")
    return value


def f_opt_int(d: Mapping[str, Any], key: str) -> int | None:
    return None if d.get(key) is None else f_int(d, key)


def f_bool(d: Mapping[str, Any], key: str, default: bool = False) -> bool:
    value = d.get(key, default)
    if not isinstance(value, bool):
        raise invalid(f"Field '{key}' must be true or false.")
    return value


def f_str_list(d: Mapping[str, Any], key: str) -> list[str]:
    value = d.get(key, [])
    if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
        raise invalid(f"Field '{key}' must be a list of strings.")
    return list(value)


def f_str_map(d: Mapping[str, Any], key: str) -> dict[str, str]:
    value = f_obj(d.get(key, {}), f"Field '{key}'")
    if not all(isinstance(v, str) for v in value.values()):
        raise invalid(f"Field '{key}' must map names to strings.")
    return dict(value)
