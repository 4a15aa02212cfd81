"""What the agent needs from its interpreter: the Ray and psutil versions it is tested with.

The one source of these bounds: :mod:`styx.cluster.install` installs within them, and
``python -m styx.agent deps-ok`` checks an interpreter against them, so an image that already
ships Ray and psutil installs nothing.
"""

from __future__ import annotations

#: Ray versions the agent is tested with: at least RAY_MIN, below RAY_BELOW.
RAY_MIN, RAY_BELOW = (2, 9), (3,)
PSUTIL_MIN = (5, 9)
RAY_REQUIREMENT = "ray[client]>=2.9,<3"
PSUTIL_REQUIREMENT = "psutil>=5.9"


def installed_version(dist: str) -> tuple[int, ...] | None:
    """The first three numeric parts of an installed distribution's version, or None when it
    is not installed (``"2.9.3rc1"`` -> ``(2, 9, 3)``)."""
    from importlib import metadata

    try:
        raw = metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None
    parts = []
    for piece in raw.split(".")[:3]:
        digits = "".join(c for c in piece if c.isdigit()) or "0"
        parts.append(int(digits))
    return tuple(parts)


def deps_ok() -> bool:
    """Whether the Ray and psutil this interpreter sees are within the bounds above."""
    ray, psutil = installed_version("ray"), installed_version("psutil")
    return (
        ray is not None
        and RAY_MIN <= ray < RAY_BELOW
        and psutil is not None
        and psutil >= PSUTIL_MIN
    )
