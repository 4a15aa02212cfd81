"""Helpers for state tests that run code in several OS processes at once."""

from __future__ import annotations

import multiprocessing
import os
import sys
import traceback
from collections.abc import Callable
from typing import Any

# fork: children start at once with everything the parent imported (no re-import per child).
_CTX = multiprocessing.get_context("fork")


def _child(fn: Callable[..., Any], args: tuple[Any, ...], queue: Any) -> None:
    try:
        queue.put((os.getpid(), "ok", fn(*args)))
    except BaseException as exc:  # report everything to the parent, which fails the test
        queue.put((os.getpid(), "error", "".join(traceback.format_exception(exc))))
        sys.exit(1)


def run_in_processes(
    fn: Callable[..., Any], arg_list: list[tuple[Any, ...]], timeout: float = 120.0
) -> list[Any]:
    """Run ``fn(*args)`` for each args in its own forked process, all at once; the results.

    Fails (AssertionError) if any child raised, crashed or overran ``timeout``.
    """
    queue = _CTX.Queue()
    procs = [_CTX.Process(target=_child, args=(fn, args, queue)) for args in arg_list]
    for p in procs:
        p.start()
    results: list[Any] = []
    errors: list[str] = []
    for _ in procs:
        try:
            _pid, kind, value = queue.get(timeout=timeout)
        except Exception:
            errors.append("a child process reported nothing before the timeout")
            break
        (results if kind == "ok" else errors).append(value)
    for p in procs:
        p.join(timeout=10)
        if p.is_alive():
            p.kill()
            errors.append(f"child {p.pid} did not exit")
    assert not errors, "\n".join(errors)
    return results
