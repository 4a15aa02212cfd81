"""rsync's remote shell for pods: ``python -m styx.providers.kubernetes.rsh CONTEXT NAMESPACE
POD CMD...`` runs CMD in the pod through the API's exec and pipes this process's stdin and
stdout to it (rsync then speaks its protocol over the pair), exiting with CMD's exit code.
"""

from __future__ import annotations

import os
import select
import sys


def main(argv: list[str]) -> int:
    if len(argv) < 4:
        sys.stderr.write("usage: rsh CONTEXT NAMESPACE POD COMMAND...\n")
        return 2
    context, namespace, pod, *command = argv
    # As over ssh, the words form one command line for the remote shell (rsync quotes for it).
    command = ["sh", "-c", " ".join(command)]
    from styx.providers.kubernetes.podexec import open_stream, read_pending

    ws = open_stream(context, namespace, pod, command, stdin=True)
    stdin_open = True
    try:
        while ws.is_open():
            ws.update(timeout=0.0)
            read_pending(ws)
            if ws.peek_stdout():
                os.write(1, ws.read_stdout())
            if ws.peek_stderr():
                os.write(2, ws.read_stderr())
            fds = [ws.sock.sock] + ([0] if stdin_open else [])
            ready, _, _ = select.select(fds, [], [], 1.0)
            if 0 in ready:
                data = os.read(0, 1 << 16)
                if data:
                    ws.write_stdin(data)
                else:
                    stdin_open = False
                    ws.close_channel(0)
            if ws.sock.sock in ready or _pending(ws):
                ws.update(timeout=0.05)
        if ws.peek_stdout():
            os.write(1, ws.read_stdout())
        if ws.peek_stderr():
            os.write(2, ws.read_stderr())
        code = ws.returncode
    finally:
        ws.close()
    return int(code if code is not None else 255)


def _pending(ws: object) -> bool:
    sock = getattr(getattr(ws, "sock", None), "sock", None)
    pending = getattr(sock, "pending", None)
    return bool(pending and pending())


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
