"""Label and field selectors, as a real API server reads them (for the Kubernetes stand-in, which
stands in for a real cluster). Label selectors: ``k=v``, ``k==v``, ``k!=v``, ``k in (a,b)``,
``k notin (a,b)``, ``k``, ``!k``; field selectors: ``a.b=v``, ``a.b==v``, ``a.b!=v`` on any
dotted path of the object (a missing field reads as empty)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

Matcher = Callable[[Mapping[str, Any]], bool]

_KEY = r"[A-Za-z0-9]([-A-Za-z0-9_./]*[A-Za-z0-9])?"
_VALUE = r"([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?"
_SET_RE = re.compile(rf"^({_KEY})\s+(in|notin)\s+\((.*)\)$")
_EQ_RE = re.compile(rf"^({_KEY})\s*(==|!=|=)\s*({_VALUE})$")
_EXISTS_RE = re.compile(rf"^(!?)\s*({_KEY})$")
_FIELD_RE = re.compile(r"^([A-Za-z0-9_.\-]+)\s*(==|!=|=)\s*(.*)$")


class SelectorError(ValueError):
    """A selector that does not parse (the server answers 400 BadRequest)."""


def _split(selector: str) -> list[str]:
    """Split at the commas outside parentheses."""
    parts: list[str] = []
    depth, start = 0, 0
    for i, ch in enumerate(selector):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(selector[start:i])
            start = i + 1
    parts.append(selector[start:])
    return [p.strip() for p in parts if p.strip()]


def _requirement(text: str) -> Matcher:
    if m := _SET_RE.match(text):
        key, op = m.group(1), m.group(3)
        values = {v.strip() for v in m.group(4).split(",") if v.strip()}
        if op == "in":
            return lambda labels: labels.get(key) in values
        return lambda labels: labels.get(key) not in values
    if m := _EQ_RE.match(text):
        key, op, value = m.group(1), m.group(3), m.group(4)
        if op == "!=":
            return lambda labels: labels.get(key) != value
        return lambda labels: labels.get(key) == value
    if m := _EXISTS_RE.match(text):
        negate, key = m.group(1) == "!", m.group(2)
        return lambda labels: (key in labels) != negate
    raise SelectorError(f"unable to parse requirement: {text!r}")


def label_matcher(selector: str | None) -> Matcher:
    """A predicate on an object's labels (``{}`` when absent) for a label-selector string."""
    if not selector or not selector.strip():
        return lambda labels: True
    reqs = [_requirement(p) for p in _split(selector)]
    return lambda labels: all(r(labels) for r in reqs)


def field_value(obj: Mapping[str, Any], path: str) -> str:
    """The value at a dotted path, as a selector compares it ("" when missing)."""
    cur: Any = obj
    for part in path.split("."):
        if not isinstance(cur, Mapping) or part not in cur:
            return ""
        cur = cur[part]
    if isinstance(cur, bool):
        return "true" if cur else "false"
    return "" if cur is None else str(cur)


def field_matcher(selector: str | None) -> Matcher:
    """A predicate on a whole object for a field-selector string."""
    if not selector or not selector.strip():
        return lambda obj: True
    reqs: list[tuple[str, bool, str]] = []
    for part in _split(selector):
        m = _FIELD_RE.match(part)
        if not m:
            raise SelectorError(f"invalid field selector: {part!r}")
        reqs.append((m.group(1), m.group(2) == "!=", m.group(3).strip()))
    return lambda obj: all((field_value(obj, p) == v) != neg for p, neg, v in reqs)


def match_expression(labels: Mapping[str, str], expr: Mapping[str, Any]) -> bool:
    """One ``matchExpressions`` entry (``In``, ``NotIn``, ``Exists``, ``DoesNotExist``, ``Gt``,
    ``Lt``), as label selectors and node affinity use them."""
    key, op = expr.get("key", ""), expr.get("operator", "")
    values: Sequence[str] = expr.get("values") or []
    have = labels.get(key)
    if op == "In":
        return have is not None and have in values
    if op == "NotIn":
        return have is None or have not in values
    if op == "Exists":
        return have is not None
    if op == "DoesNotExist":
        return have is None
    if op in ("Gt", "Lt") and have is not None and values:
        try:
            a, b = int(have), int(values[0])
        except ValueError:
            return False
        return a > b if op == "Gt" else a < b
    return False


def match_label_selector(labels: Mapping[str, str], selector: Mapping[str, Any]) -> bool:
    """A structured ``LabelSelector`` (``matchLabels`` and ``matchExpressions``)."""
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    return all(match_expression(labels, e) for e in selector.get("matchExpressions") or [])
