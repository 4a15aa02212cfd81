"""Immutable, hashable containers for spec values.

Spec objects are frozen dataclasses that the optimizer and the state layer use as dictionary
keys and compare by value, so every field must be hashable and must not change after
validation. :class:`FrozenDict` is a ``dict`` that refuses mutation; :func:`freeze` and
:func:`thaw` convert free-form YAML data (``service:``, ``config:``) to and from that form.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, NoReturn, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class FrozenDict(dict[K, V]):
    """A ``dict`` that cannot be changed after construction and hashes by its items.

    It is still a ``dict`` (``isinstance(x, dict)``, JSON-serializable, fast lookups); every
    mutating method raises ``TypeError``.
    """

    __slots__ = ("_hash",)

    def __init__(self, items: Mapping[K, V] | Iterable[tuple[K, V]] = (), /) -> None:
        super().__init__(items)
        self._hash: int | None = None

    def _immutable(self, *_: object, **__: object) -> NoReturn:
        raise TypeError("FrozenDict cannot be modified; build a new one instead")

    __setitem__ = _immutable
    __delitem__ = _immutable
    __ior__ = _immutable
    clear = _immutable
    pop = _immutable
    popitem = _immutable
    setdefault = _immutable
    update = _immutable

    def __hash__(self) -> int:  # type: ignore[override]
        if self._hash is None:
            self._hash = hash(frozenset(self.items()))
        return self._hash

    def __reduce__(self) -> tuple[Any, ...]:
        # pickle/deepcopy would otherwise rebuild the dict through the blocked __setitem__.
        return (type(self), (dict(self),))

    def __repr__(self) -> str:
        return f"FrozenDict({dict.__repr__(self)})"


EMPTY: FrozenDict[Any, Any] = FrozenDict()


def freeze(value: Any) -> Any:
    """Return ``value`` with every dict made a :class:`FrozenDict` and every list a tuple."""
    if isinstance(value, dict):
        return FrozenDict((k, freeze(v)) for k, v in value.items())
    if isinstance(value, list | tuple):
        return tuple(freeze(v) for v in value)
    return value


def thaw(value: Any) -> Any:
    """Inverse of :func:`freeze`: plain dicts and lists, ready for YAML or JSON."""
    if isinstance(value, dict):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [thaw(v) for v in value]
    return value
