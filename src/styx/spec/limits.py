"""How big a task's scripts and environment may be, and what they may not hold.

Scripts reach the nodes as files and run from there, so their size is bounded only by
:data:`SCRIPT_MAX_BYTES`. Environment variables cannot go that way: Linux hands a program its
environment through ``execve``, which refuses any one ``NAME=value`` string over 128 KiB and
all of them together over about 2 MiB (a quarter of the stack limit). Styx checks those
limits when the task is read, with a clear error, instead of letting the job fail on the node.
A NUL byte cannot be part of an environment value (nor of a shell script) at all.
"""

from __future__ import annotations

#: The kernel's MAX_ARG_STRLEN: one ``NAME=value`` string, with its terminating NUL.
ENV_VAR_MAX_BYTES = 128 * 1024
#: Every variable a task sets (envs and secrets together), leaving room for the node's own.
ENVS_TOTAL_MAX_BYTES = 1024 * 1024
#: ``setup`` and ``run`` each.
SCRIPT_MAX_BYTES = 16 * 1024 * 1024


def env_problem(name: str, value: str) -> str | None:
    """What is wrong with one variable's value, or None."""
    if "\x00" in value:
        return f"The value of {name} holds a NUL byte, which no environment variable can hold."
    size = len(name.encode()) + len(value.encode()) + 2
    if size > ENV_VAR_MAX_BYTES:
        return (
            f"The value of {name} is {size // 1024} KiB; Linux passes at most 128 KiB per "
            "environment variable."
        )
    return None


ENV_HINT = "Pass large data as a file (file_mounts or the workdir) and its path in the variable."


def envs_total_problem(sizes: dict[str, int]) -> str | None:
    """``sizes`` maps variable names to their value's size in bytes."""
    total = sum(len(k) + v + 2 for k, v in sizes.items())
    if total > ENVS_TOTAL_MAX_BYTES:
        return (
            f"The task's environment variables take {total // 1024} KiB together; Styx passes "
            f"at most {ENVS_TOTAL_MAX_BYTES // 1024} KiB."
        )
    return None


def script_problem(field: str, text: str) -> str | None:
    """What is wrong with a ``setup`` or ``run`` script, or None."""
    if "\x00" in text:
        return f"'{field}' holds a NUL byte, which a shell script cannot hold."
    size = len(text.encode())
    if size > SCRIPT_MAX_BYTES:
        return (
            f"'{field}' is {size // (1024 * 1024)} MiB; a script may be at most "
            f"{SCRIPT_MAX_BYTES // (1024 * 1024)} MiB."
        )
    return None
