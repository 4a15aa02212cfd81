"""The one rule for the names of clusters, as SkyPilot's: ASCII letters, digits, ``-``, ``_``
and ``.``; a letter first, a letter or digit last; at most :data:`MAX_LENGTH` characters.

A name that follows it works as a folder, a cloud tag, a hostname part and a table cell; one
that does not (a newline, a space, ``é``) is refused before anything is made with it.
"""

from __future__ import annotations

import re

from styx.errors import UsageError

MAX_LENGTH = 63
_NAME = re.compile(r"[A-Za-z](?:[A-Za-z0-9._-]*[A-Za-z0-9])?", re.ASCII)
RULE = (
    f"Use up to {MAX_LENGTH} ASCII letters, digits, '-', '_' or '.', starting with a letter "
    "and ending with a letter or digit."
)


def is_valid_name(name: str) -> bool:
    """Whether ``name`` follows the rule (``fullmatch``: a trailing newline does not pass)."""
    return 0 < len(name) <= MAX_LENGTH and _NAME.fullmatch(name) is not None


def check_cluster_name(name: str) -> str:
    """``name``, or UsageError ``invalid-cluster-name`` saying the rule."""
    if not is_valid_name(name):
        shown = name if name.isprintable() and len(name) <= 80 else repr(name[:80])
        raise UsageError(
            f"'{shown}' is not a valid cluster name."
            if shown == name
            else f"{shown} is not a valid cluster name.",
            RULE,
            code="invalid-cluster-name",
        )
    return name
