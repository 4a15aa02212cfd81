"""A small declarative schema for free-form sections (config, service, storage config).

The typed parts of a task (resources, file mounts) are parsed by hand into dataclasses; the
sections that Styx stores and passes on as data (``~/.styx/config.yaml``, ``service:``,
``config:``) are described with these few node types and checked by :meth:`Schema.check`,
which returns plain data and raises the same located errors as :mod:`styx.spec.check`.

The nodes are plain slotted classes rather than dataclasses: they are built at import time
in large numbers, and ``import styx.spec.task`` must stay cheap.
"""

from __future__ import annotations

import contextlib
import contextvars
import re
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

from styx.errors import StyxError
from styx.spec.check import Value, suggest

#: Where :class:`Fields` puts the keys it does not know while a config file is read leniently
#: (see :func:`unknown_keys_kept`); None: unknown keys are errors.
_UNKNOWN: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar(
    "styx_unknown_config_keys", default=None
)


@contextlib.contextmanager
def unknown_keys_kept() -> Iterator[list[str]]:
    """While active, a config key that no schema knows and that is not a near-miss of a known
    one (a typo still fails, with its did-you-mean) is skipped and its dotted path collected:
    SkyPilot adds config keys faster than any reader can follow."""
    found: list[str] = []
    token = _UNKNOWN.set(found)
    try:
        yield found
    finally:
        _UNKNOWN.reset(token)


def _kind(raw: Any) -> str:
    if raw is None:
        return "null"
    if isinstance(raw, bool):
        return "bool"
    if isinstance(raw, int):
        return "int"
    if isinstance(raw, float):
        return "float"
    if isinstance(raw, str):
        return "str"
    if isinstance(raw, list):
        return "list"
    if isinstance(raw, dict):
        return "map"
    return "other"


class Schema:
    """Base of the schema nodes: ``check`` validates a Value and returns plain data."""

    __slots__ = ("expected",)
    kinds: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, expected: str = "a value") -> None:
        self.expected = expected

    def accepts(self, kind: str) -> bool:
        return kind in self.kinds

    def check(self, value: Value) -> Any:
        raise NotImplementedError


class Anything(Schema):
    """Any YAML value, passed through (pod specs and other foreign documents)."""

    __slots__ = ()
    kinds = frozenset({"null", "bool", "int", "float", "str", "list", "map"})

    def check(self, value: Value) -> Any:
        return value.raw


class Null(Schema):
    """Only null (for fields where null means something, such as aws.vpc_name)."""

    __slots__ = ()
    kinds = frozenset({"null"})

    def check(self, value: Value) -> Any:
        return None


class Str(Schema):
    """Text, optionally one of ``choices`` (case-insensitive) or matching ``pattern``."""

    __slots__ = ("choices", "hint", "pattern")
    kinds = frozenset({"str"})

    def __init__(
        self,
        *,
        choices: tuple[str, ...] = (),
        pattern: str | None = None,
        expected: str = "text",
        hint: str = "",
    ) -> None:
        super().__init__(expected)
        self.choices = choices
        self.pattern = pattern
        self.hint = hint

    def check(self, value: Value) -> Any:
        if self.choices:
            return value.choice(self.choices)
        text = value.string(nonempty=False)
        if self.pattern is not None and not re.fullmatch(self.pattern, text):
            value.bad_value(
                f"'{value.name}' must be {self.expected}, but it is {value.what()}.",
                self.hint or f"Write {self.expected}.",
            )
        return text


class Bool(Schema):
    """A YAML boolean."""

    __slots__ = ()
    kinds = frozenset({"bool"})

    def check(self, value: Value) -> Any:
        return value.boolean()


class Int(Schema):
    """A whole number within bounds (booleans refused)."""

    __slots__ = ("maximum", "minimum")
    kinds = frozenset({"int"})

    def __init__(self, *, minimum: int | None = None, maximum: int = 2**31 - 1) -> None:
        super().__init__("a whole number")
        self.minimum = minimum
        self.maximum = maximum

    def check(self, value: Value) -> Any:
        return value.integer(minimum=self.minimum, maximum=self.maximum)


class Num(Schema):
    """A finite number, optionally above a minimum."""

    __slots__ = ("exclusive_minimum", "minimum")
    kinds = frozenset({"int", "float"})

    def __init__(self, *, minimum: float | None = None, exclusive_minimum: bool = False) -> None:
        super().__init__("a number")
        self.minimum = minimum
        self.exclusive_minimum = exclusive_minimum

    def check(self, value: Value) -> Any:
        return value.number(minimum=self.minimum, exclusive_minimum=self.exclusive_minimum)


class ListOf(Schema):
    """A list whose items all follow one schema."""

    __slots__ = ("item",)
    kinds = frozenset({"list"})

    def __init__(self, item: Schema) -> None:
        super().__init__("a list")
        self.item = item

    def check(self, value: Value) -> Any:
        return [self.item.check(v) for v in value.items()]


class MapOf(Schema):
    """A mapping with free keys (names, contexts, regions) and values of one schema."""

    __slots__ = ("value",)
    kinds = frozenset({"map"})

    def __init__(self, value: Schema) -> None:
        super().__init__("a mapping")
        self.value = value

    def check(self, value: Value) -> Any:
        return {k: self.value.check(v) for k, v in value.entries().items()}


class Fields(Schema):
    """A mapping with known keys; unknown keys are errors unless ``extra`` allows them.

    A key written with a null value counts as absent unless its schema accepts null.
    """

    __slots__ = ("extra", "fields", "required")
    kinds = frozenset({"map"})

    def __init__(
        self,
        fields: Mapping[str, Schema],
        *,
        required: tuple[str, ...] = (),
        extra: Schema | None = None,
    ) -> None:
        super().__init__("a mapping")
        self.fields = fields
        self.required = required
        self.extra = extra

    def check(self, value: Value) -> Any:
        entries = value.entries()
        out: dict[str, Any] = {}
        for key, item in entries.items():
            schema = self.fields.get(key, self.extra)
            if schema is None:
                sink = _UNKNOWN.get()
                if sink is not None and value.src.config and suggest(key, self.fields) is None:
                    sink.append(item.name)
                    continue
                value.fields(self.fields)  # raises unknown-key with a suggestion
                raise AssertionError("unreachable")
            if item.raw is None and not schema.accepts("null"):
                continue
            out[key] = schema.check(item)
        for key in self.required:
            if key not in out:
                value.fail(
                    "missing-field",
                    f"'{value.name}' needs the field '{key}'.",
                    f"Add '{key}' to '{value.name}'.",
                )
        return out


class OneOf(Schema):
    """The first option whose kind fits the value; ``expected`` describes all of them."""

    __slots__ = ("options",)

    def __init__(self, options: tuple[Schema, ...], expected: str = "a value") -> None:
        super().__init__(expected)
        self.options = options

    def accepts(self, kind: str) -> bool:
        return any(o.accepts(kind) for o in self.options)

    def check(self, value: Value) -> Any:
        kind = _kind(value.raw)
        fitting = [o for o in self.options if o.accepts(kind)]
        if not fitting:
            value.wrong_type(self.expected)
        first_error: StyxError | None = None
        for option in fitting:
            try:
                return option.check(value)
            except StyxError as exc:  # try the next option; report the first failure
                first_error = first_error or exc
        assert first_error is not None
        raise first_error
