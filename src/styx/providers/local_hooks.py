"""What a local cluster's agent runs when autostop fires: stop (or tear down) its own cluster.

Run as ``python -m styx.providers.local_hooks --cluster NAME --home STYX_HOME stop|down``.
The record is updated first, so that ``styx status`` is right even though this command stops the
agent that started it.
"""

from __future__ import annotations

import argparse
import os
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="styx.providers.local_hooks")
    parser.add_argument("--cluster", required=True)
    parser.add_argument("--home", required=True)
    parser.add_argument("--db-url", default=None)
    parser.add_argument("action", choices=["stop", "down"])
    args = parser.parse_args(argv)
    os.environ["STYX_HOME"] = args.home
    if args.db_url:
        os.environ["STYX_DB_URL"] = args.db_url
    from styx.ops import cluster_ops

    cluster_ops.autostop_fired(args.cluster, down=args.action == "down")
    return 0


if __name__ == "__main__":
    sys.exit(main())
