"""Command-line overrides (``--env``, ``--cpus``, ``--gpus``...) applied to tasks.

:class:`Overrides` holds the flags as the CLI received them (text); :func:`apply` validates
them with the same rules as the YAML fields and returns the task ready to launch: envs and
secrets merged (``--env-file`` < ``--env``, both over the YAML), resource fields replaced in
the defaults and in every ``any_of``/``ordered`` candidate, and ``${VAR}`` filled in.
Errors have code ``invalid-override`` (``env-file-not-found`` for a missing env file) and a
location naming the flag.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from typing import Any

from styx.errors import Location, SpecError, StyxError
from styx.spec import limits
from styx.spec import quantities as q
from styx.spec.check import Source, Value
from styx.spec.dag import Dag
from styx.spec.frozen import FrozenDict
from styx.spec.mounts import Secret
from styx.spec.resources import Resources
from styx.spec.task import Task

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclasses.dataclass(frozen=True, slots=True)
class Overrides:
    """Flags given on the command line; None (or empty) means "not given"."""

    env: tuple[str, ...] = ()  # "KEY=VALUE", or "KEY" to copy it from the local environment
    env_file: str | None = None  # a dotenv file
    secret: tuple[str, ...] = ()  # "KEY=VALUE" or "KEY"
    cpus: str | None = None
    memory: str | None = None
    gpus: str | None = None  # accelerators, such as "A100:8"
    num_nodes: int | str | None = None
    infra: str | None = None
    use_spot: bool | None = None
    instance_type: str | None = None
    disk_size: int | str | None = None
    image_id: str | None = None
    ports: tuple[str, ...] = ()

    @property
    def changes_resources(self) -> bool:
        """True when any resource flag (not envs, secrets or --num-nodes) is given."""
        given: list[object] = [self.cpus, self.memory, self.gpus, self.infra, self.use_spot]
        given += [self.instance_type, self.disk_size, self.image_id]
        return any(f is not None for f in given) or bool(self.ports)


def _flag_error(flag: str, message: str, hint: str, code: str = "invalid-override") -> SpecError:
    return SpecError(message, hint, location=Location(path=flag), code=code)


def _flag_value(flag: str, raw: Any) -> Value:
    return Value(raw, (flag,), Source())


def _relabel(flag: str, error: StyxError) -> SpecError:
    message = error.message.replace(f"'{flag}'", flag)
    hint = error.hint.replace(f"'{flag}'", flag)
    return SpecError(message, hint, location=Location(path=flag), code="invalid-override")


def _pair(flag: str, item: str, environ: Mapping[str, str]) -> tuple[str, str]:
    key, sep, value = item.partition("=")
    key = key.strip()
    if not _ENV_NAME.fullmatch(key):
        raise _flag_error(
            flag,
            f"{flag} got {item.split('=')[0]!r}, which is not a variable name.",
            f"Write {flag} NAME=value, with a name of letters, digits and underscores.",
        )
    if not sep:
        if key not in environ:
            raise _flag_error(
                flag,
                f"{flag} {key} asks for the local value of {key}, but it is not set.",
                f"Set {key} in your shell, or write {flag} {key}=value.",
            )
        value = environ[key]
    problem = limits.env_problem(key, value)
    if problem:
        raise _flag_error(flag, problem, limits.ENV_HINT, "invalid-env-value")
    return key, value


def read_env_file(path: str) -> dict[str, str]:
    """Read a dotenv file as SkyPilot does, with python-dotenv: ``KEY=value`` lines, ``export``
    prefixes, ``#`` comments, quoted values (multi-line, with escapes such as ``\\t`` and
    ``\\n`` in double quotes) and ``${VAR}`` expanded from earlier lines and the environment.

    Unlike python-dotenv, which skips what it cannot parse with a warning, a line that is not
    an assignment (or a key with no ``=``) is an ``invalid-override`` error naming its line.
    """
    import io

    from dotenv import dotenv_values
    from dotenv.parser import parse_stream

    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except FileNotFoundError:
        raise _flag_error(
            "--env-file",
            f"The env file '{path}' does not exist.",
            "Check the path given to --env-file.",
            "env-file-not-found",
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise _flag_error(
            "--env-file",
            f"The env file '{path}' cannot be read ({exc}).",
            "Give a readable UTF-8 text file.",
        ) from None
    lines: dict[str, int] = {}
    for binding in parse_stream(io.StringIO(text)):
        where = Location(file=path, line=binding.original.line, path="--env-file")
        if binding.error or (binding.key is not None and not _ENV_NAME.fullmatch(binding.key)):
            raise SpecError(
                f"Line {binding.original.line} of the env file is not KEY=value.",
                "Write KEY=value (a name of letters, digits and underscores); "
                "lines starting with # are comments.",
                location=where,
                code="invalid-override",
            )
        if binding.key is not None and binding.value is None:
            raise SpecError(
                f"Line {binding.original.line} of the env file names {binding.key} "
                "without a value.",
                f"Write {binding.key}=value (or {binding.key}= for an empty value).",
                location=where,
                code="invalid-override",
            )
        if binding.key is not None:
            lines[binding.key] = binding.original.line
    out: dict[str, str] = {}
    for key, value in dotenv_values(stream=io.StringIO(text), interpolate=True).items():
        out[key] = value or ""
        problem = limits.env_problem(key, out[key])
        if problem:
            raise SpecError(
                problem,
                limits.ENV_HINT,
                location=Location(file=path, line=lines.get(key), path="--env-file"),
                code="invalid-env-value",
            )
    return out


def _resource_changes(o: Overrides) -> dict[str, Any]:
    """Parsed resource fields, each checked with the YAML rules and reported by flag."""
    parsers: list[tuple[str, str, Any, Any]] = [
        ("--cpus", "cpus", o.cpus, q.parse_cpus),
        ("--memory", "memory", o.memory, q.parse_memory),
        ("--infra", "infra", o.infra, q.parse_infra),
        ("--disk-size", "disk_size", o.disk_size, q.parse_disk_size),
        ("--instance-type", "instance_type", o.instance_type, lambda v: v.string().strip()),
        ("--image-id", "image_id", o.image_id, lambda v: v.string().strip()),
    ]
    changes: dict[str, Any] = {}
    try:
        for flag, field, raw, parse in parsers:
            if raw is not None:
                changes[field] = parse(_flag_value(flag, raw))
        if o.gpus is not None:
            flag = "--gpus"
            accelerators, ordered = q.parse_accelerators(_flag_value(flag, o.gpus))
            changes["accelerators"] = accelerators
            changes["accelerators_ordered"] = ordered
        if o.ports:
            flag = "--ports"
            values = [_flag_value(flag, _port(p)) for p in o.ports]
            changes["ports"] = tuple(r for v in values for r in q.parse_ports(v))
    except StyxError as exc:
        raise _relabel(
            exc.location.path if exc.location and exc.location.path else "", exc
        ) from None
    if o.use_spot is not None:
        changes["use_spot"] = bool(o.use_spot)
    return changes


def _port(text: str) -> int | str:
    return int(text) if text.strip().isdigit() and len(text.strip()) <= 6 else text


def _with_resources(resources: Resources, changes: dict[str, Any]) -> Resources:
    """Set ``changes`` on the defaults and clear them in every candidate, so that each
    candidate uses the overridden value, as SkyPilot applies overrides to all candidates."""
    cleared: dict[str, Any] = {}
    for field in changes:
        default = Resources.__dataclass_fields__[field].default
        cleared[field] = default
    alternatives = tuple(dataclasses.replace(a, **cleared) for a in resources.alternatives)
    return dataclasses.replace(resources, **changes, alternatives=alternatives)


def _num_nodes(raw: int | str) -> int:
    value = raw
    if isinstance(raw, str) and raw.strip().isdigit() and len(raw.strip()) < 10:
        value = int(raw)
    try:
        return _flag_value("--num-nodes", value).integer(minimum=1, maximum=100_000)
    except StyxError as exc:
        raise _relabel("--num-nodes", exc) from None


def apply(task: Task, overrides: Overrides, environ: Mapping[str, str] | None = None) -> Task:
    """The task with ``overrides`` applied and ``${VAR}`` substituted, ready to launch.

    ``environ`` (default ``os.environ``) supplies values for ``--env KEY`` without ``=``.
    """
    env_source = os.environ if environ is None else environ
    envs: dict[str, str | None] = dict(task.envs)
    if overrides.env_file is not None:
        envs.update(read_env_file(overrides.env_file))
    envs.update(_pair("--env", item, env_source) for item in overrides.env)
    secrets: dict[str, Secret | None] = dict(task.secrets)
    for item in overrides.secret:
        key, value = _pair("--secret", item, env_source)
        secrets[key] = Secret(value)
    changes: dict[str, Any] = {"envs": FrozenDict(envs), "secrets": FrozenDict(secrets)}
    if overrides.num_nodes is not None:
        changes["num_nodes"] = _num_nodes(overrides.num_nodes)
    resource_changes = _resource_changes(overrides)
    if len(resource_changes.get("accelerators", ())) > 1 and task.resources.alternatives:
        raise _flag_error(
            "--gpus",
            "--gpus lists several accelerators, but the task already has any_of/ordered.",
            "Give --gpus a single accelerator such as A100:8.",
        )
    if resource_changes:
        changes["resources"] = _with_resources(task.resources, resource_changes)
    return dataclasses.replace(task, **changes).substitute_env_vars()


def apply_to_dag(dag: Dag, overrides: Overrides, environ: Mapping[str, str] | None = None) -> Dag:
    """:func:`apply` to every task of ``dag`` (a new Dag with the same edges).

    Envs and secrets go to every task, as SkyPilot does for pipelines; resource flags and
    --num-nodes are refused for several tasks, since they would not say which task they mean.
    """
    if len(dag.tasks) > 1 and (overrides.changes_resources or overrides.num_nodes is not None):
        raise _flag_error(
            "--num-nodes" if overrides.num_nodes is not None else "resources",
            f"Resource flags cannot be applied to a file with {len(dag.tasks)} tasks.",
            "Set the resources of each task in the YAML file instead.",
        )
    new = Dag(
        dag.name,
        on_failure=dag.on_failure,
        execution=dag.execution,
        primary_tasks=dag.primary_tasks,
        termination_delay=dag.termination_delay,
    )
    tasks = [new.add(apply(t, overrides, environ)) for t in dag.tasks]
    for a, b in sorted(dag.edges):
        new.add_edge(tasks[a], tasks[b])
    return new
