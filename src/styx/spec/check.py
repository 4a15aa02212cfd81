"""Reading validated values out of parsed YAML or JSON, with errors that say what and where.

A :class:`Value` is one piece of input together with its path and its :class:`Source` (file
name, position map, which error to raise). Its methods check a type or a constraint and return
the Python value, or raise an error whose location carries the file, line, column and path
(``resources.accelerators``, ``[2].run``).

This is Styx's one validation framework: the task YAML, ``~/.styx/config.yaml`` and the SSH
node pools (SpecError / ConfigError), and the head-node agent's JSON protocol (a Source with
its own ``make_error``: AgentError ``invalid-request``). It needs no PyYAML, so the agent can
use it on a node that has none. The ``*_at`` readers check one field of a JSON object without
building a Value for it, for records read by the thousand.

Error codes of the spec layer (stable; never renamed once shipped):

=====================  =====================================================================
``yaml-syntax``        the text is not YAML (or not UTF-8, or uses an unsupported tag)
``duplicate-key``      a mapping has the same key twice
``too-complex``        nesting, alias expansion or file size beyond the loader's limits
``empty-file``         the file holds no task
``file-not-found``     a task or config file does not exist or cannot be read
``unknown-key``        a field name the schema does not know (with a did-you-mean hint)
``invalid-type``       a value of the wrong kind (a list where a number belongs, ...)
``invalid-value``      a value of the right kind that is out of range or malformed
``missing-field``      a required field is absent
``conflicting-fields`` two fields that cannot be used together (``infra`` and ``cloud``)
``missing-value``      an env or secret declared with a null value got none at launch time
``dag-cycle``          task dependencies form a cycle; the message names it (``a -> b -> a``)
``unknown-dependency`` ``depends_on`` names a task that is not in the file
``duplicate-task``     two tasks in one file share a name
``env-file-not-found`` the ``--env-file`` given does not exist
``invalid-override``   a command-line override (``--cpus``, ``--env``) is malformed
``not-supported``      (NotSupportedError) valid, but Styx cannot launch it yet
``invalid-config``     (ConfigError) ``~/.styx/config.yaml`` is wrong; ``details['reason']``
                       holds the specific code from this table
=====================  =====================================================================
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Collection, Mapping
from typing import Any, NoReturn

from styx.errors import ConfigError, Location, SpecError, StyxError
from styx.spec.frozen import EMPTY

MAX_INT = 2**31 - 1

#: A path into a document: mapping keys and list indexes.
YamlPath = tuple[str | int, ...]
#: A 1-based (line, column) in a file.
Mark = tuple[int, int]
#: Builds a Source's error from (display path, code, message, hint, details).
ErrorFactory = Callable[[str, str, str, str, "dict[str, Any] | None"], StyxError]


class _Required:
    """The default of a field that must be present."""

    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()


_IDENT_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")


def format_path(path: YamlPath) -> str:
    """``("resources", "accelerators")`` -> ``resources.accelerators``; ``(2, "run")`` ->
    ``[2].run``; keys that are not identifiers are quoted: ``file_mounts['/data']``."""
    out: list[str] = []
    for part in path:
        if isinstance(part, int):
            out.append(f"[{part}]")
        elif part and set(part) <= _IDENT_CHARS and not part[0].isdigit():
            out.append(f".{part}" if out else part)
        else:
            out.append(f"[{part!r}]")
    return "".join(out)


@dataclasses.dataclass(frozen=True, slots=True)
class Source:
    """Where values come from: a file name, its position map, and the error to raise.

    Errors are SpecErrors; ConfigErrors (code ``invalid-config``) with ``config``; or whatever
    ``make_error`` builds (the agent protocol's ``invalid-request``)."""

    file: str | None = None
    positions: Mapping[YamlPath, Mark] = EMPTY
    prefix: YamlPath = ()
    config: bool = False
    make_error: ErrorFactory | None = None

    def location(self, path: YamlPath) -> Location:
        """The location of ``path``, using the nearest recorded ancestor for the line."""
        probe = path
        while probe and probe not in self.positions:
            probe = probe[:-1]
        line, column = self.positions.get(probe, (None, None))
        return Location(self.file, line, column, format_path(self.prefix + path) or None)

    def error(
        self,
        path: YamlPath,
        code: str,
        message: str,
        hint: str,
        details: dict[str, Any] | None = None,
    ) -> StyxError:
        """Build (not raise) the error for ``path``."""
        if self.make_error is not None:
            return self.make_error(format_path(self.prefix + path), code, message, hint, details)
        location = self.location(path)
        if self.config:
            return ConfigError(
                message, hint, location=location, details={"reason": code, **(details or {})}
            )
        return SpecError(message, hint, location=location, code=code, details=details)


def describe(raw: Any) -> str:
    """A short phrase for a value's kind, used in ``... but it is <describe>`` messages."""
    if raw is None:
        return "empty (null)"
    if isinstance(raw, bool):
        return f"the boolean {'true' if raw else 'false'}"
    if isinstance(raw, int | float):
        text = repr(raw)
        return f"the number {text if len(text) <= 24 else text[:20] + '...'}"
    if isinstance(raw, str):
        return f"the text {raw!r}" if len(raw) <= 40 else "a long text"
    if isinstance(raw, dict):
        return "a mapping"
    if isinstance(raw, list | tuple):
        return "a list"
    if isinstance(raw, bytes):
        return "binary data"
    return f"a {type(raw).__name__} value"


def suggest(word: str, options: Collection[str]) -> str | None:
    """The closest option to ``word`` by spelling, if any is close."""
    import difflib  # lazy: only error paths need it

    lowered = {o.lower(): o for o in options}
    if word.lower() in lowered:
        return lowered[word.lower()]
    matches = difflib.get_close_matches(word.lower(), list(lowered), n=1, cutoff=0.6)
    return lowered[matches[0]] if matches else None


@dataclasses.dataclass(frozen=True, slots=True)
class Value:
    """One value of user input at a YAML path; its methods validate and convert it."""

    raw: Any
    path: YamlPath = ()
    src: Source = Source()
    secret: bool = False  # never quote the value in messages

    @property
    def name(self) -> str:
        """The display path (``resources.cpus``), or ``the document`` at the root."""
        return format_path(self.src.prefix + self.path) or "the document"

    @property
    def label(self) -> str:
        """How messages start: ``'resources.cpus'``, or ``The document`` at a root."""
        if self.path:
            return f"'{self.name}'"
        return f"Document {self.name}" if self.src.prefix else "The document"

    def fail(
        self, code: str, message: str, hint: str, details: dict[str, Any] | None = None
    ) -> NoReturn:
        """Raise the error for this value's path."""
        raise self.src.error(self.path, code, message, hint, details)

    def what(self) -> str:
        """This value described for a message (never quoting a secret)."""
        if self.secret and isinstance(self.raw, str | int | float | bytes):
            return (
                "a secret value of the wrong kind"
                if not isinstance(self.raw, str)
                else ("a secret value")
            )
        return describe(self.raw)

    def wrong_type(self, expected: str, hint: str | None = None) -> NoReturn:
        """Raise ``invalid-type``: this value is not ``expected``."""
        where = f" for '{self.name}'" if self.path else " here"
        self.fail(
            "invalid-type",
            f"{self.label} must be {expected}, but it is {self.what()}.",
            hint or f"Write {expected}{where}.",
        )

    def bad_value(self, message: str, hint: str) -> NoReturn:
        """Raise ``invalid-value`` with this message and hint."""
        self.fail("invalid-value", message, hint)

    def child(self, key: str | int, raw: Any) -> Value:
        """The Value of ``raw`` one step below this one, at ``key``."""
        return Value(raw, (*self.path, key), self.src, self.secret)

    # -- containers ---------------------------------------------------------------------------

    def fields(self, known: Collection[str], *, what: str = "") -> dict[str, Value]:
        """Check this is a mapping whose keys are all in ``known``; return its non-null entries.

        Unknown keys raise ``unknown-key`` with the closest known name as a hint; ``what``
        names the mapping in that message.
        """
        entries = self.entries()
        for key, value in entries.items():
            if key not in known:
                self._unknown_key(key, value, known, what)
        return {k: v for k, v in entries.items() if v.raw is not None}

    def _unknown_key(self, key: str, value: Value, known: Collection[str], what: str) -> NoReturn:
        where = what or (f"'{self.name}'" if self.path or self.src.prefix else "a task")
        guess = suggest(key, known)
        if guess is not None:
            hint = f"Did you mean '{guess}'?"
        else:
            hint = f"Use one of the known fields: {', '.join(sorted(known))}."
        value.fail(
            "unknown-key",
            f"Unknown field '{key}' in {where}.",
            hint,
            {"key": key, "suggestion": guess, "known": sorted(known)},
        )

    def entries(self, *, what: str = "") -> dict[str, Value]:
        """Check this is a mapping; return every entry (nulls included) as Values."""
        if not isinstance(self.raw, dict):
            self.wrong_type(f"a mapping{' of ' + what if what else ''}")
        return {str(k): self.child(str(k), v) for k, v in self.raw.items()}

    def items(self) -> list[Value]:
        """Check this is a list; return its items as Values."""
        if not isinstance(self.raw, list):
            self.wrong_type("a list")
        return [self.child(i, v) for i, v in enumerate(self.raw)]

    # -- scalars ------------------------------------------------------------------------------

    def string(self, *, nonempty: bool = True, hint: str | None = None) -> str:
        """A text value; numbers and booleans are rejected (quote them in YAML)."""
        if not isinstance(self.raw, str):
            scalar = isinstance(self.raw, int | float) and not isinstance(self.raw, bool)
            self.wrong_type(
                "text",
                hint
                or ("Put the value in quotes." if scalar else f"Write text for '{self.name}'."),
            )
        if nonempty and not self.raw.strip():
            self.bad_value(f"'{self.name}' is empty.", f"Give '{self.name}' a value or remove it.")
        return self.raw

    def boolean(self) -> bool:
        """A YAML boolean (``true``/``false``; numbers are refused)."""
        if not isinstance(self.raw, bool):
            self.wrong_type("true or false")
        return self.raw

    def integer(self, *, minimum: int | None = None, maximum: int = MAX_INT) -> int:
        """An integer (not a boolean, not a float) within the bounds."""
        if isinstance(self.raw, bool) or not isinstance(self.raw, int):
            self.wrong_type("a whole number")
        self.check_range(self.raw, minimum, maximum)
        return self.raw

    def number(
        self,
        *,
        minimum: float | None = None,
        maximum: float | None = None,
        exclusive_minimum: bool = False,
    ) -> float | int:
        """A finite int or float (not a boolean) within the bounds."""
        if isinstance(self.raw, bool) or not isinstance(self.raw, int | float):
            self.wrong_type("a number")
        if isinstance(self.raw, float) and not math.isfinite(self.raw):
            self.bad_value(f"'{self.name}' must be a finite number.", "Use an ordinary number.")
        if exclusive_minimum and minimum is not None and self.raw <= minimum:
            self.bad_value(
                f"'{self.name}' must be greater than {minimum:g}, but it is {self.raw:g}.",
                f"Use a value above {minimum:g}.",
            )
        self.check_range(self.raw, None if exclusive_minimum else minimum, maximum)
        return self.raw

    def check_range(self, number: float, minimum: float | None, maximum: float | None) -> None:
        """Raise ``invalid-value`` unless ``minimum <= number <= maximum``."""
        shown = f"{number:g}" if abs(number) < 1e15 else "a very large number"
        if minimum is not None and number < minimum:
            self.bad_value(
                f"'{self.name}' must be at least {minimum:g}, but it is {shown}.",
                f"Use a value of {minimum:g} or more.",
            )
        if maximum is not None and number > maximum:
            self.bad_value(
                f"'{self.name}' must be at most {maximum:g}, but it is {shown}.",
                f"Use a value of {maximum:g} or less.",
            )

    def choice(self, options: Collection[str], *, upper: bool = False) -> str:
        """One of ``options``, matched case-insensitively; returns the canonical option."""
        text = self.string()
        for option in options:
            if option.lower() == text.strip().lower():
                return option
        guess = suggest(text, options)
        listed = ", ".join(options)
        self.fail(
            "invalid-value",
            f"'{self.name}' must be one of {listed}, but it is {self.what()}.",
            f"Did you mean '{guess}'?" if guess else f"Use one of {listed}.",
            {"choices": list(options)},
        )

    def string_map(self, *, what: str = "", convert: bool = False) -> dict[str, str]:
        """A mapping of text to text; with ``convert``, numbers and booleans become text."""
        out: dict[str, str] = {}
        for key, value in self.entries(what=what).items():
            if convert and isinstance(value.raw, bool | int | float):
                out[key] = str(value.raw)
            else:
                out[key] = value.string(nonempty=False)
        return out

    # -- fields of a JSON object (no Value is built unless a field is wrong) -------------------

    def obj(self, known: Collection[str] | None = None, *, what: str = "") -> Value:
        """Check this is a mapping (and, given ``known``, that every key is known); returns
        this Value, whose ``*_at`` methods read its fields."""
        if not isinstance(self.raw, dict):
            self.wrong_type(f"a mapping{' of ' + what if what else ''}")
        if known is not None:
            for key in self.raw:
                if key not in known:
                    self._unknown_key(str(key), self.child(str(key), None), known, what)
        return self

    def _field(self, key: str, default: Any) -> Any:
        raw = self.raw.get(key, default)
        if raw is REQUIRED:
            self.child(key, None).fail(
                "missing-field", f"'{self.child(key, None).name}' is required.", "Give it."
            )
        return raw

    def text_at(self, key: str, default: Any = REQUIRED) -> str:
        """Field ``key`` of this mapping: text (``default`` when absent)."""
        raw = self._field(key, default)
        if not isinstance(raw, str):
            self.child(key, raw).wrong_type("text")
        return raw

    def opt_text_at(self, key: str) -> str | None:
        """Field ``key``: text, or None when absent or null."""
        raw = self.raw.get(key)
        if raw is not None and not isinstance(raw, str):
            self.child(key, raw).wrong_type("text or null")
        return raw

    def number_at(self, key: str, default: Any = REQUIRED) -> float:
        """Field ``key``: a number (not a boolean), as a float."""
        raw = self._field(key, default)
        if isinstance(raw, bool) or not isinstance(raw, int | float):
            self.child(key, raw).wrong_type("a number")
        return float(raw)

    def opt_number_at(self, key: str) -> float | None:
        """Field ``key``: a number, or None when absent or null."""
        return None if self.raw.get(key) is None else self.number_at(key)

    def integer_at(self, key: str, default: Any = REQUIRED) -> int:
        """Field ``key``: a whole number (not a boolean, not a float)."""
        raw = self._field(key, default)
        if isinstance(raw, bool) or not isinstance(raw, int):
            self.child(key, raw).wrong_type("a whole number")
        return raw

    def opt_integer_at(self, key: str) -> int | None:
        """Field ``key``: a whole number, or None when absent or null."""
        return None if self.raw.get(key) is None else self.integer_at(key)

    def boolean_at(self, key: str, default: Any = REQUIRED) -> bool:
        """Field ``key``: true or false."""
        raw = self._field(key, default)
        if not isinstance(raw, bool):
            self.child(key, raw).wrong_type("true or false")
        return raw

    def texts_at(self, key: str) -> list[str]:
        """Field ``key``: a list of texts (empty when absent)."""
        raw = self.raw.get(key, [])
        if not isinstance(raw, list) or not all(isinstance(x, str) for x in raw):
            self.child(key, raw).wrong_type("a list of texts")
        return list(raw)

    def text_map_at(self, key: str) -> dict[str, str]:
        """Field ``key``: a mapping of text to text (empty when absent)."""
        raw = self.raw.get(key, {})
        if not isinstance(raw, dict) or not all(isinstance(v, str) for v in raw.values()):
            self.child(key, raw).wrong_type("a mapping of names to texts")
        return dict(raw)


def root(
    data: Any,
    *,
    file: str | None = None,
    positions: Mapping[YamlPath, Mark] = EMPTY,
    prefix: YamlPath = (),
    config: bool = False,
    source: Source | None = None,
) -> Value:
    """The Value for a whole parsed document (of ``source`` when given, else one built from
    the other arguments)."""
    return Value(data, (), source or Source(file, positions, prefix, config))
