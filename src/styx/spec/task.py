"""``Task``: one unit of work in SkyPilot's task YAML dialect.

``Task.from_yaml`` reads a file (or YAML text) holding one task; files with several tasks
are pipelines or DAGs and are read with :meth:`styx.spec.dag.Dag.from_yaml`. A Task is a
frozen, hashable value; ``Task.from_yaml(t.to_yaml()) == t``. Values in ``secrets`` are
:class:`~styx.spec.mounts.Secret` objects: :meth:`Task.to_dict` writes them out (it is the
faithful form, for round trips), :meth:`Task.to_display_dict` redacts them (for printing,
logs and the database).

``${VAR}`` in ``workdir``, ``file_mounts``, ``service`` and ``volumes`` is kept as written;
:meth:`Task.substitute_env_vars` (called by :func:`styx.spec.overrides.apply`) fills it in.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, overload

from styx.errors import Location, SpecError
from styx.spec import envsubst, limits, yamlio
from styx.spec.check import Value, root
from styx.spec.frozen import EMPTY, FrozenDict, thaw
from styx.spec.mounts import (
    DataSize,
    FileMount,
    GitWorkdir,
    Secret,
    parse_data_size,
    parse_file_mounts,
    parse_volumes,
    parse_workdir,
)
from styx.spec.resources import NO_RESOURCES, Resources, parse_resources

if TYPE_CHECKING:
    from styx.spec.dag import Dag

TASK_KEYS = (
    "name", "workdir", "num_nodes", "resources", "envs", "secrets", "file_mounts", "volumes",
    "setup", "run", "config", "service", "inputs", "outputs", "depends_on",
)  # fmt: skip
MAX_NODES = 100_000
_NAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
REDACTED = "<redacted>"


@dataclasses.dataclass(frozen=True, slots=True)
class Task:
    """A task: what to run, on how many nodes, with which resources, files and settings."""

    name: str | None = None
    workdir: str | GitWorkdir | None = None
    num_nodes: int = 1
    resources: Resources = NO_RESOURCES
    envs: FrozenDict[str, str | None] = EMPTY  # None: must be given with --env at launch
    secrets: FrozenDict[str, Secret | None] = EMPTY  # None: must be given with --secret
    file_mounts: FrozenDict[str, FileMount] = EMPTY
    volumes: FrozenDict[str, Any] = EMPTY  # mount path -> volume name or volume mapping
    setup: str | None = None
    run: str | None = None
    config: FrozenDict[str, Any] = EMPTY  # per-task overrides of config.yaml keys
    service: FrozenDict[str, Any] | None = None
    inputs: DataSize | None = None
    outputs: DataSize | None = None

    # -- reading ------------------------------------------------------------------------------

    @classmethod
    def from_yaml(cls, source: str | os.PathLike[str]) -> Task:
        """Read one task from a YAML file path or from YAML text.

        A string is taken as a path when it is one line ending in ``.yaml``/``.yml`` or names
        an existing file. Raises SpecError (``multiple-tasks`` for pipelines and DAGs).
        """
        text, file = read_source(source)
        return cls.from_yaml_str(text, file=file)

    @classmethod
    def from_yaml_str(cls, text: str, *, file: str | None = None) -> Task:
        """Read one task from YAML text; ``file`` is only used in error locations."""
        documents = [d for d in yamlio.load_documents(text, file=file) if d.data is not None]
        if not documents:
            raise empty_file(file)
        if len(documents) > 1:
            raise SpecError(
                f"The file holds {len(documents)} YAML documents (a pipeline or DAG), "
                "not a single task.",
                "Read it with Dag.from_yaml, or run it with `styx jobs launch`.",
                location=file_location(file),
                code="multiple-tasks",
            )
        doc = documents[0]
        value = root(doc.data, file=file, positions=doc.positions)
        task, depends_on = parse_task(value)
        reject_dependencies(depends_on)
        return task

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, file: str | None = None) -> Task:
        """Validate task data already loaded from YAML (or built in Python)."""
        task, depends_on = parse_task(root(data, file=file))
        reject_dependencies(depends_on)
        return task

    # -- writing ------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The canonical, minimal mapping, secrets included (faithful, for round trips)."""
        out: dict[str, Any] = {}
        if self.name is not None:
            out["name"] = self.name
        if self.workdir is not None:
            out["workdir"] = (
                self.workdir if isinstance(self.workdir, str) else self.workdir.to_yaml()
            )
        if self.num_nodes != 1:
            out["num_nodes"] = self.num_nodes
        resources = self.resources.to_dict()
        if resources:
            out["resources"] = resources
        if self.envs:
            out["envs"] = dict(self.envs)
        if self.secrets:
            out["secrets"] = {k: None if s is None else s.reveal() for k, s in self.secrets.items()}
        if self.file_mounts:
            out["file_mounts"] = {k: m.to_yaml() for k, m in self.file_mounts.items()}
        if self.volumes:
            out["volumes"] = thaw(self.volumes)
        for key in ("setup", "run"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        if self.config:
            out["config"] = thaw(self.config)
        if self.service is not None:
            out["service"] = thaw(self.service)
        for key in ("inputs", "outputs"):
            size = getattr(self, key)
            if size is not None:
                out[key] = size.to_yaml()
        return out

    def to_display_dict(self) -> dict[str, Any]:
        """Like :meth:`to_dict` but with every secret value replaced by ``<redacted>``; use
        it for printing, logging and storing."""
        out = self.to_dict()
        if self.secrets:
            out["secrets"] = {k: None if s is None else REDACTED for k, s in self.secrets.items()}
        return out

    def to_yaml(self) -> str:
        """Canonical YAML text (secrets included); ``Task.from_yaml(t.to_yaml()) == t``."""
        return yamlio.dump(self.to_dict())

    # -- derived tasks ------------------------------------------------------------------------

    def substitute_env_vars(self) -> Task:
        """This task with ``${VAR}``/``$VAR`` from ``envs`` filled into ``workdir``,
        ``file_mounts``, ``service`` and ``volumes``, re-validated (paths may change)."""
        data = self.to_dict()
        changed = False
        for key in envsubst.SUBSTITUTED_FIELDS:
            if key in data:
                new = envsubst.substitute_data(data[key], self.envs)
                changed = changed or new != data[key]
                data[key] = new
        return Task.from_dict(data) if changed else self

    def missing_values(self) -> list[str]:
        """Paths (``envs.X``, ``secrets.Y``) declared with a null value and not yet given."""
        missing = [f"envs.{k}" for k, v in self.envs.items() if v is None]
        return missing + [f"secrets.{k}" for k, v in self.secrets.items() if v is None]

    # -- DAG building -------------------------------------------------------------------------

    @overload
    def __rshift__(self, other: Task) -> Task: ...
    @overload
    def __rshift__(self, other: Sequence[Task]) -> Sequence[Task]: ...
    def __rshift__(self, other: Task | Sequence[Task]) -> Task | Sequence[Task]:
        """``a >> b``: inside ``with Dag() as dag:``, make ``b`` depend on ``a``."""
        from styx.spec.dag import current_dag

        dag: Dag = current_dag()
        for target in [other] if isinstance(other, Task) else list(other):
            dag.add_edge(self, target)
        return other

    def __rrshift__(self, other: Sequence[Task]) -> Task:
        """``[a, b] >> c``: ``c`` depends on both."""
        from styx.spec.dag import current_dag

        dag: Dag = current_dag()
        for source in other:
            dag.add_edge(source, self)
        return self


def file_location(file: str | None) -> Location | None:
    """A Location naming just the file, if there is one."""
    return Location(file=file) if file else None


def empty_file(file: str | None) -> SpecError:
    """The ``empty-file`` error for ``file``."""
    return SpecError(
        "The file holds no task.",
        "Add at least a 'run' command, such as run: echo hello.",
        location=file_location(file),
        code="empty-file",
    )


def read_source(source: str | os.PathLike[str]) -> tuple[str, str | None]:
    """(text, file name) for a path or YAML text (see :meth:`Task.from_yaml`)."""
    if isinstance(source, os.PathLike):
        name = os.fspath(source)
        return yamlio.read_text(name), name
    if not isinstance(source, str):
        raise TypeError(f"expected a path or YAML text, got {type(source).__name__}")
    one_line = "\n" not in source
    if one_line and (source.strip().endswith((".yaml", ".yml")) or os.path.isfile(source)):
        return yamlio.read_text(source), source
    return source, None


def reject_dependencies(depends_on: Value | None) -> None:
    """A lone task may not depend on anything (``unknown-dependency``)."""
    if depends_on is None:
        return
    names = parse_depends_on(depends_on)
    if names:
        name, value = names[0]
        value.fail(
            "unknown-dependency",
            f"'{value.name}' names '{name}', but the file holds no other task.",
            "Put the tasks in one file as YAML documents separated by '---'.",
        )


def parse_depends_on(v: Value) -> list[tuple[str, Value]]:
    """``depends_on``: a task name or a list of names; each name with its Value."""
    items = v.items() if isinstance(v.raw, list) else [v]
    return [(item.string().strip(), item) for item in items]


def _envs(v: Value) -> FrozenDict[str, str | None]:
    out: dict[str, str | None] = {}
    for key, item in v.entries(what="variable names to values").items():
        _check_env_name(item, key)
        if item.raw is None or isinstance(item.raw, str):
            out[key] = item.raw
        elif isinstance(item.raw, bool | int | float):
            out[key] = str(item.raw)  # as SkyPilot does: 1 -> "1", true -> "True"
        else:
            item.wrong_type("text, a number, a boolean or null")
        _check_env_value(item, key, out[key])
    return FrozenDict(out)


def _check_env_value(item: Value, key: str, value: str | None) -> None:
    problem = None if value is None else limits.env_problem(key, value)
    if problem:
        item.fail("invalid-env-value", problem, limits.ENV_HINT)


def _script(v: Value, field: str) -> str:
    text = v.string(nonempty=False)
    problem = limits.script_problem(field, text)
    if problem:
        v.bad_value(problem, "Keep scripts to shell text; ship data as files.")
    return text


def _secrets(v: Value) -> FrozenDict[str, Secret | None]:
    secret = dataclasses.replace(v, secret=True)
    out: dict[str, Secret | None] = {}
    for key, item in secret.entries(what="secret names to values").items():
        _check_env_name(item, key)
        if item.raw is None:
            out[key] = None
        elif isinstance(item.raw, str | bool | int | float):
            value = item.raw if isinstance(item.raw, str) else str(item.raw)
            _check_env_value(item, key, value)
            out[key] = Secret(value)
        else:
            item.wrong_type("text or null")
    return FrozenDict(out)


def _check_env_name(item: Value, key: str) -> None:
    if not _ENV_NAME.fullmatch(key):
        item.bad_value(
            f"'{key}' is not a valid environment variable name.",
            "Use letters, digits and underscores, not starting with a digit.",
        )


def _name(v: Value) -> str:
    name = v.string().strip()
    if not _NAME.fullmatch(name):
        v.bad_value(
            f"The task name {name!r} is not valid.",
            "Use letters, digits, '.', '_' and '-', starting and ending with a letter or digit.",
        )
    return name


def parse_task(v: Value) -> tuple[Task, Value | None]:
    """Parse one task document; returns the task and its raw ``depends_on`` (for the DAG)."""
    if not isinstance(v.raw, dict):
        v.wrong_type("a mapping of task fields such as 'run' and 'resources'")
    f = v.fields(TASK_KEYS)
    config = service = None
    if "config" in f:
        from styx.spec.config import parse_task_config

        config = parse_task_config(f["config"])
    if "service" in f:
        from styx.spec.service import parse_service

        service = parse_service(f["service"])
    task = Task(
        name=_name(f["name"]) if "name" in f else None,
        workdir=parse_workdir(f["workdir"]) if "workdir" in f else None,
        num_nodes=f["num_nodes"].integer(minimum=1, maximum=MAX_NODES) if "num_nodes" in f else 1,
        resources=parse_resources(f["resources"]) if "resources" in f else NO_RESOURCES,
        envs=_envs(f["envs"]) if "envs" in f else EMPTY,
        secrets=_secrets(f["secrets"]) if "secrets" in f else EMPTY,
        file_mounts=parse_file_mounts(f["file_mounts"]) if "file_mounts" in f else EMPTY,
        volumes=parse_volumes(f["volumes"]) if "volumes" in f else EMPTY,
        setup=_script(f["setup"], "setup") if "setup" in f else None,
        run=_script(f["run"], "run") if "run" in f else None,
        config=config or EMPTY,
        service=service,
        inputs=parse_data_size(f["inputs"]) if "inputs" in f else None,
        outputs=parse_data_size(f["outputs"]) if "outputs" in f else None,
    )
    return task, f.get("depends_on")
