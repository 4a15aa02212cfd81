"""``styx check``: each infra's credential check, run through its declaration, and the cache.

Checks read local credential files and environment variables only, unless ``probe=True``
(``styx check --probe``), when each infra may call its API and report the identity it sees.
The result is cached in ``$STYX_HOME/enabled_infra.json``, so that a launch reads one small file
instead of checking again; ``styx check`` refreshes it. A check that raises is reported as that
infra being unusable, with the error, never as a failure of ``styx check``.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING

from styx.infra import InfraChoice, InfraStatus
from styx.paths import atomic_write
from styx.providers import registry

if TYPE_CHECKING:
    from styx.spec.task import Task

CACHE_FILE = "enabled_infra.json"


def cache_path() -> Path:
    from styx.paths import home

    return home() / CACHE_FILE


def check_one(info: registry.InfraInfo, *, probe: bool = False) -> InfraStatus:
    """One infra's check; an unexpected error is that infra's reason, not a crash."""
    from styx.errors import StyxError

    try:
        status = info.check(probe)
    except StyxError as err:
        return InfraStatus(info.name, False, err.message)
    except Exception as err:  # a broken credential file must not break `styx check`
        return InfraStatus(info.name, False, f"the check failed: {type(err).__name__}: {err}")
    return dataclasses.replace(status, name=info.name)


def run_checks(names: tuple[str, ...] | None = None, *, probe: bool = False) -> list[InfraStatus]:
    """Check the named infra (every known one when None) now; a full check writes the cache."""
    wanted = registry.infos()
    if names is not None:
        keep = {registry.resolve(n) for n in names}
        wanted = [i for i in wanted if i.name in keep]
    results = [check_one(i, probe=probe) for i in wanted]
    if names is None:
        payload = {"checked_at": time.time(), "infra": [dataclasses.asdict(s) for s in results]}
        atomic_write(cache_path(), json.dumps(payload, indent=1))
    return results


def cached_status() -> list[InfraStatus] | None:
    """The last full ``styx check`` result, or None when there is none (or it predates an
    infra that is known now, so that a new infra is checked once rather than never)."""
    try:
        data = json.loads(cache_path().read_text())
        found = [InfraStatus(**item) for item in data["infra"]]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not set(registry.builtin_names()) <= {s.name for s in found}:
        return None
    return found


def statuses(*, refresh: bool = False) -> dict[str, InfraStatus]:
    """Every known infra's status, from the cache (checked now when there is none). An
    infra registered since the last full check is checked alone, without rewriting the cache."""
    status = None if refresh else cached_status()
    if status is None:
        status = run_checks()
    return {s.name: s for s in status}


def enabled_infra(*, refresh: bool = False) -> list[str]:
    """Names of the enabled infra kinds, from the cache (checked now when there is none)."""
    return [name for name, s in statuses(refresh=refresh).items() if s.enabled]


def infra_choices(task: Task) -> list[InfraChoice]:
    """Every known infra as a plan of ``task`` sees it: launchable or not, enabled or not (from
    the cached check; an infra the cache does not know yet is checked now), what it can do,
    and, for the eligible ones, the capacity they already have that could hold the task."""
    status = statuses()
    out: list[InfraChoice] = []
    for info in registry.infos():
        st = status.get(info.name) or check_one(info)
        eligible = st.enabled and info.launchable
        offers = tuple(info.offers(task)) if eligible and info.offers is not None else ()
        out.append(
            InfraChoice(
                name=info.name,
                title=info.title,
                capabilities=info.capabilities,
                catalog=info.catalog,
                launchable=info.launchable,
                enabled=st.enabled,
                reason=st.reason,
                offers=offers,
            )
        )
    return out
