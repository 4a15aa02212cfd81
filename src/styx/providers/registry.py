"""Provider lookup by infra name, importing each provider (and its SDK) only when used."""

from __future__ import annotations

import importlib

from styx.errors import NotSupportedError
from styx.providers.base import Provider

# infra kind -> (module, class). Later issues add aws, gcp, azure, kubernetes.
_PROVIDERS: dict[str, tuple[str, str]] = {
    "local": ("styx.providers.local", "LocalProvider"),
    "ssh": ("styx.providers.ssh", "SSHProvider"),
    "aws": ("styx.providers.aws", "AWSProvider"),
}


def get_provider(name: str) -> Provider:
    """The provider for an infra kind such as ``local``; not-supported for kinds not built yet."""
    entry = _PROVIDERS.get(name)
    if entry is None:
        raise NotSupportedError(
            f"Infra '{name}' is not supported by this version of Styx yet.",
            "Use `infra: local` (this machine) for now; SSH pools and clouds are on the way.",
        )
    cls = getattr(importlib.import_module(entry[0]), entry[1])
    provider: Provider = cls()
    return provider


def known() -> list[str]:
    return sorted(_PROVIDERS)
