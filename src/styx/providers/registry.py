"""The provider seam: every infra Styx knows declares itself here, once.

An infra is a module or package under ``providers/`` that exposes ``INFO``, an
:class:`InfraInfo`: its name, what it can do (:class:`styx.infra.Capabilities`), its credential
check (fast and local; a probe that calls the infra on request), where its prices come from (a
catalog, or the capacity it already has), and the ``Provider`` class that launches there (None
for infra Styx plans on but cannot launch on yet). Adding an infra is a package plus one line in
:data:`BUILTIN`. Nothing outside ``providers/`` names an infra: the optimizer, launch, ``styx
check`` and the CLI iterate over :func:`infos`.

Declarations are cheap to import: no SDK is imported until a check, a probe or a provider runs.
:func:`register` adds an infra at run time (plugins, tests).
"""

from __future__ import annotations

import dataclasses
import importlib
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from styx.errors import NotSupportedError, UsageError
from styx.infra import Capabilities, InfraOffer, InfraStatus

if TYPE_CHECKING:
    from styx.providers.base import Provider
    from styx.spec.task import Task

#: The infra this version knows, in the order ``styx check`` lists them: one line each.
BUILTIN: tuple[str, ...] = (
    "styx.providers.local",
    "styx.providers.ssh_pools",
    "styx.providers.aws.info",
    "styx.providers.gcp",
    "styx.providers.azure",
    "styx.providers.kubernetes",
    "styx.providers.lambda_cloud",
    "styx.providers.vast",
)

#: A credential check: ``probe=False`` reads local files and variables only; ``probe=True`` may
#: call the infra's API (``styx check --probe``) and report the identity it sees.
Check = Callable[[bool], InfraStatus]
#: The capacity an infra already has that could hold ``task`` (this machine, SSH pools).
Offers = Callable[["Task"], list[InfraOffer]]


@dataclasses.dataclass(frozen=True, slots=True)
class InfraInfo:
    """One infra's declaration. ``provider`` is ``"module:Class"`` of its Provider, or None when
    Styx cannot launch there yet; ``catalog`` the catalog cloud its prices come from (None: it
    prices through ``offers``); ``aliases`` other names ``infra:`` and ``styx check`` accept."""

    name: str
    title: str
    capabilities: Capabilities
    check: Check
    provider: str | None = None
    catalog: str | None = None
    offers: Offers | None = None
    aliases: tuple[str, ...] = ()
    #: The keys of a task's ``config:`` this infra applies (dotted prefixes, such as
    #: ``kubernetes.pod_config``); a launch warns about the others, naming each.
    task_config: tuple[str, ...] = ()

    @property
    def launchable(self) -> bool:
        return self.provider is not None


_lock = threading.Lock()
_infos: dict[str, InfraInfo] | None = None
_extra: dict[str, InfraInfo] = {}


def _load() -> dict[str, InfraInfo]:
    global _infos
    with _lock:
        if _infos is None:
            found: dict[str, InfraInfo] = {}
            for module in BUILTIN:
                info: InfraInfo = importlib.import_module(module).INFO
                found[info.name] = info
            _infos = found
        return {**_infos, **_extra}


def register(info: InfraInfo) -> None:
    """Add (or replace) an infra at run time; it then appears in checks and plans."""
    with _lock:
        _extra[info.name] = info


def unregister(name: str) -> None:
    """Remove an infra added with :func:`register` (tests)."""
    with _lock:
        _extra.pop(name, None)


def infos() -> list[InfraInfo]:
    """Every known infra, built-in first, in declaration order."""
    return list(_load().values())


def builtin_names() -> list[str]:
    """The names of the infra this version declares (without those added at run time)."""
    _load()
    return list(_infos or {})


def names() -> list[str]:
    """The names of every known infra."""
    return [i.name for i in infos()]


def resolve(name: str) -> str:
    """The canonical name of ``name`` or one of its aliases; UsageError when unknown."""
    table = _load()
    if name in table:
        return name
    for info in table.values():
        if name in info.aliases:
            return info.name
    raise UsageError(
        f"Unknown infra: {name}.", f"Choose among {', '.join(table)}.", code="unknown-infra"
    )


def info(name: str) -> InfraInfo:
    """The declaration of ``name`` (or an alias); UsageError when unknown."""
    return _load()[resolve(name)]


def get_provider(name: str) -> Provider:
    """The provider for an infra kind such as ``local``; not-supported for kinds Styx plans on
    but cannot launch on yet, or does not know."""
    table = _load()
    entry = table.get(name)
    if entry is None or entry.provider is None:
        title = entry.title if entry is not None else name
        raise NotSupportedError(
            f"Launching on {title} is not supported by this version of Styx yet.",
            f"Use one of: {', '.join(launchable())}; `styx check` shows which are enabled.",
        )
    module, _, cls = entry.provider.partition(":")
    provider: Provider = getattr(importlib.import_module(module), cls)()
    return provider


def unapplied_task_config(infra: str, config: object) -> list[str]:
    """The dotted keys of a task's ``config:`` (two levels deep) that ``infra`` does not
    apply, in the order written."""
    honoured = info(infra).task_config
    keys: list[str] = []
    if isinstance(config, dict):
        for top, value in config.items():
            subs = [f"{top}.{k}" for k in value] if isinstance(value, dict) and value else [top]
            keys.extend(subs)
    return [k for k in keys if not any(k == h or k.startswith(h + ".") for h in honoured)]


def launchable() -> list[str]:
    """Infra Styx can launch on."""
    return [i.name for i in infos() if i.launchable]
