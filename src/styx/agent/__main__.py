"""``python -m styx.agent VERB --root ROOT``: the agent's command line.

Verbs: ``run`` (the agent, foreground), ``supervise`` (restart the agent when it dies),
``ensure`` (start both unless this version already answers; exit 0 once it does), ``stop``
(supervisor, agent, jobs; with ``--ray-temp-dir`` this cluster's Ray too), ``stop-ray`` (only
this cluster's Ray processes on this node) and ``call`` (JSON requests on stdin, replies on
stdout). Imports stay light: ``ensure`` and ``call`` are on the latency path of `styx exec`.
"""

from __future__ import annotations

import argparse
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
    ray = verbs.add_parser("stop-ray")
    ray.add_argument("--temp-dir", required=True)
    ray.add_argument("--port", type=int)
    args = parser.parse_args(argv)

    from styx.agent import daemon

    if args.verb == "stop-ray":
        return daemon.stop_ray(args.temp_dir, args.port)
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
