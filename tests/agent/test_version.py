"""The agent's version fingerprints every module it runs, so ``ensure`` replaces a stale one."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from styx.agent.version import SHARED_MODULES


def test_the_fingerprint_covers_every_styx_module_the_agent_imports() -> None:
    code = (
        "import json, sys\n"
        "import styx.agent.__main__, styx.agent.daemon, styx.agent.server, styx.agent.service\n"
        "import styx.agent.client, styx.agent.raynode, styx.agent.autostop\n"
        "import styx.agent.node_task, styx.agent.execution\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    ).stdout
    outside = {
        m for m in json.loads(out)
        if m.startswith("styx.") and not m.startswith("styx.agent")
    }  # fmt: skip
    packages = {"styx.spec"}  # __init__ files without code
    covered = {"styx." + name.removesuffix(".py").replace("/", ".") for name in SHARED_MODULES}
    assert outside - packages <= covered, sorted(outside - packages - covered)
