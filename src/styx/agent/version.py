"""The agent's version: the styx package version plus a fingerprint of the agent's own source
(``styx/agent/*.py`` and the few shared modules it runs, :data:`SHARED_MODULES`).

``ensure`` restarts a running agent whose version differs from the caller's, so a changed agent
(even at the same package version, e.g. an editable install) never keeps serving stale code.
"""

from __future__ import annotations

import functools
import hashlib
import os
import sys
from pathlib import Path

#: Hidden test knob: appended to the version, so a test can play an agent of another version.
TEST_SUFFIX_ENV = "STYX_AGENT_TEST_VERSION_SUFFIX"


#: Modules outside ``styx/agent`` that the agent runs (relative to the ``styx`` package): a
#: change to them must restart a running agent too.
SHARED_MODULES = (
    "errors.py",
    "paths.py",
    "lifecycle.py",
    "supervisor.py",
    "spec/check.py",
    "spec/frozen.py",
)


@functools.cache
def agent_version() -> str:
    # The package root is already imported (it is this package's parent); reading its version
    # costs nothing, unlike importlib.metadata's scan of sys.path.
    base = str(getattr(sys.modules.get("styx"), "__version__", "0+unknown"))
    digest = hashlib.sha1()
    here = Path(__file__).parent
    shared = [here.parent / name for name in SHARED_MODULES]
    for path in [*sorted(here.glob("*.py")), *shared]:
        digest.update(str(path.relative_to(here.parent)).encode())
        digest.update(path.read_bytes())
    return f"{base}+{digest.hexdigest()[:10]}{os.environ.get(TEST_SUFFIX_ENV, '')}"
