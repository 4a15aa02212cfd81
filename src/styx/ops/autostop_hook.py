"""What a local cluster's agent runs when autostop fires: stop (or tear down) its own cluster.

Run as ``python -m styx.ops.autostop_hook --cluster NAME --home STYX_HOME [--db-url URL]
stop|down`` (the argv comes from ``LocalProvider.autostop_commands``). The record is updated
first, so that ``styx status`` is right even though this command stops the agent that started
it. It lives in ops/, not in the provider, because stopping a cluster is a user operation: it
needs the state database and the cluster's provider, which only ops may combine.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys

#: The module the agent runs; ``LocalProvider.autostop_commands`` builds its argv with it.
MODULE = "styx.ops.autostop_hook"


def main(argv: list[str] | None = None) -> int:
    """Parse the hook's argv, point Styx at the client's home (and database), and act."""
    parser = argparse.ArgumentParser(prog=MODULE)
    parser.add_argument("--cluster", required=True)
    parser.add_argument("--home", required=True)
    parser.add_argument("--db-url", default=None)
    parser.add_argument("action", choices=["stop", "down"])
    args = parser.parse_args(argv)
    os.environ["STYX_HOME"] = args.home
    if args.db_url:
        os.environ["STYX_DB_URL"] = args.db_url
    autostop_fired(args.cluster, down=args.action == "down")
    return 0


def autostop_fired(name: str, *, down: bool) -> None:
    """Record the cluster STOPPED (or delete its record), then stop (or terminate) it; the
    job history is saved first. A cluster the database no longer knows is left alone."""
    from styx.errors import StyxError
    from styx.ops import common, storage
    from styx.ops.jobs_ops import save_history
    from styx.state.clusters import delete_cluster, get_cluster, set_cluster_status
    from styx.state.records import ClusterStatus

    db = common.database()
    record = get_cluster(db, name)
    if record is None:
        return
    handle, provider = common.handle_of(record), common.provider_of(record)
    save_history(db, handle)
    with contextlib.suppress(StyxError):  # cached writes reach their buckets before the stop
        storage.release(handle, provider)
    if down:
        delete_cluster(db, name, message="autostop: torn down when idle")
        provider.terminate(handle)
        with contextlib.suppress(StyxError):
            storage.after_down(db, name)
    else:
        set_cluster_status(db, name, ClusterStatus.STOPPED, message="autostop: stopped when idle")
        provider.stop(handle)


if __name__ == "__main__":
    sys.exit(main())
