"""``python -m testworld.ssh_cli DEST CONTROL_DIR KNOWN_HOSTS ARGV...``: run ARGV on DEST with
an :class:`SSHRunner` that knows nothing but the name, and print the result as JSON.

Tests run it where ``~/.ssh/config`` is a file they wrote (a private mount namespace with its
own /etc/passwd), to show that the user's own ssh config is honoured without ``-F``.
"""

from __future__ import annotations

import json
import sys

from styx.cluster.ssh import SSHHost, SSHRunner
from styx.errors import StyxError


def main(argv: list[str]) -> int:
    dest, control_dir, known_hosts, *command = argv
    runner = SSHRunner(
        SSHHost(dest), control_dir=control_dir, known_hosts_file=known_hosts, connect_timeout=5
    )
    try:
        res = runner.run(command)
        out = {"returncode": res.returncode, "stdout": res.stdout, "argv": runner.ssh_argv()}
    except StyxError as e:
        out = {"error": e.code, "message": e.message}
    finally:
        runner.close()
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
