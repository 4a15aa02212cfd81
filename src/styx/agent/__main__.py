"""``python -m styx.agent VERB --root ROOT``: the agent's command line.

Verbs: ``run`` (the agent, foreground), ``supervise`` (restart the agent when it dies),
``ensure`` (start both unless this version already answers; exit 0 once it does),
``start-ray`` (``ray start`` as this cluster's own: private, marked, bound), ``stop``
(supervisor, agent, jobs; with ``--ray-temp-dir`` this cluster's Ray too), ``stop-ray`` (only
this cluster's Ray processes on this node), ``call`` (JSON requests on stdin, replies on
stdout) and ``deps-ok`` (exit 0 when the Ray and psutil this Python sees will do, so an image
that ships them installs nothing). Imports stay light: ``ensure`` and ``call`` are on the latency path of `styx exec`.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m styx.agent")
    verbs = parser.add_subparsers(dest="verb", required=True)
    for verb in ("run", "supervise", "ensure", "stop", "call"):
        sub = verbs.add_parser(verb)
        sub.add_argument("--root", required=True, type=Path)
        if verb == "ensure":
            sub.add_argument("--timeout", type=float, default=60.0)
        if verb == "stop":
            sub.add_argument("--ray-temp-dir")
            sub.add_argument("--ray-port", type=int)
    start_ray = verbs.add_parser("start-ray")
    start_ray.add_argument("--root", required=True, type=Path)
    start_ray.add_argument("--temp-dir", required=True)
    start_ray.add_argument("--bind", required=True)
    start_ray.add_argument("ray_argv", nargs=argparse.REMAINDER)
    ray = verbs.add_parser("stop-ray")
    ray.add_argument("--temp-dir", required=True)
    ray.add_argument("--port", type=int)
    verbs.add_parser("deps-ok")
    args = parser.parse_args(argv)
    os.umask(0o077)  # job table, logs, sockets, Ray's files: this user's alone
    if args.verb == "deps-ok":
        from styx.agent.deps import deps_ok

        return 0 if deps_ok() else 1

    from styx.agent import daemon

    if args.verb == "stop-ray":
        return daemon.stop_ray(args.temp_dir, args.port)
    if args.verb == "start-ray":
        from styx.agent import raynode

        argv = args.ray_argv[1:] if args.ray_argv[:1] == ["--"] else args.ray_argv
        return raynode.start(args.root.expanduser().absolute(), args.temp_dir, args.bind, argv)
    root = args.root.expanduser().absolute()
    if args.verb == "run":
        return daemon.run(root)
    if args.verb == "supervise":
        return daemon.supervise(root)
    if args.verb == "ensure":
        return daemon.ensure(root, args.timeout)
    if args.verb == "stop":
        return daemon.stop(root, args.ray_temp_dir, args.ray_port)
    return daemon.call(root)


if __name__ == "__main__":
    sys.exit(main())
