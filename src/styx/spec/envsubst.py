"""``${VAR}`` and ``$VAR`` substitution from a task's ``envs``.

SkyPilot fills task envs into ``workdir``, ``file_mounts`` (keys and values), ``service``
and ``volumes`` when it reads a task; ``setup`` and ``run`` are left to the shell. Styx does
the same, with one difference: SkyPilot also substitutes ``secrets`` there, which would copy
secret values into fields that are printed and stored; Styx substitutes ``envs`` only.
Variables that are not defined (or are null) stay as written.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

_VAR = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")

#: Top-level task fields whose strings are substituted.
SUBSTITUTED_FIELDS = ("workdir", "file_mounts", "service", "volumes")


def substitute(text: str, env: Mapping[str, str | None]) -> str:
    """Replace ``${NAME}`` and ``$NAME`` by ``env[NAME]`` where it has a value."""
    if "$" not in text:
        return text

    def replace(match: re.Match[str]) -> str:
        value = env.get(match.group(1) or match.group(2))
        return match.group(0) if value is None else value

    return _VAR.sub(replace, text)


def substitute_data(data: Any, env: Mapping[str, str | None]) -> Any:
    """:func:`substitute` applied to every string and mapping key inside ``data``."""
    if isinstance(data, str):
        return substitute(data, env)
    if isinstance(data, dict):
        return {substitute(str(k), env): substitute_data(v, env) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [substitute_data(v, env) for v in data]
    return data
