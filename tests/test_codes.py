"""The error-code registry (styx.codes) is complete, agrees with the error classes, and is
what docs/exit-codes.md says."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

from styx import codes, errors

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src" / "styx"


def _literal(node: ast.AST | None, constants: dict[str, str]) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.Name):
        return constants.get(node.id)
    return None


def _code_positions(trees: dict[Path, ast.Module]) -> dict[str, set[int]]:
    """Functions with a parameter named ``code``: name -> its positional index."""
    takes: dict[str, set[int]] = defaultdict(set)
    for tree in trees.values():
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                names = [a.arg for a in node.args.posonlyargs + node.args.args]
                if "code" in names:
                    index = names.index("code") - (names[0] in ("self", "cls"))
                    takes[node.name].add(index)
    return takes


def codes_in_source() -> dict[str, list[tuple[str, int, str | None]]]:
    """Every error code string in src/: ``code="..."`` keywords, ``code`` class attributes and
    parameter defaults, and positional arguments of functions whose parameter is ``code``
    (module constants such as ``REFUSED = "..."`` resolved). code -> [(file, line, callee)]."""
    trees = {p: ast.parse(p.read_text(), str(p)) for p in sorted(SRC.rglob("*.py"))}
    takes = _code_positions(trees)
    found: dict[str, list[tuple[str, int, str | None]]] = defaultdict(list)
    for path, tree in trees.items():
        where = str(path.relative_to(REPO))
        constants = {
            t.id: n.value.value
            for n in tree.body
            if isinstance(n, ast.Assign) and isinstance(n.value, ast.Constant)
            and isinstance(n.value.value, str)
            for t in n.targets
            if isinstance(t, ast.Name)
        }  # fmt: skip

        def add(
            node: ast.AST | None,
            line: int,
            callee: str | None,
            constants: dict[str, str] = constants,
            where: str = where,
        ) -> None:
            value = _literal(node, constants)
            if value is not None:
                found[value].append((where, line, callee))

        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                func = node.func
                callee = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
                for kw in node.keywords:
                    if kw.arg == "code":
                        add(kw.value, node.lineno, callee)
                for index in takes.get(callee or "", ()):
                    if index < len(node.args):
                        add(node.args[index], node.lineno, callee)
            elif isinstance(node, ast.AnnAssign | ast.Assign):
                targets = [node.target] if isinstance(node, ast.AnnAssign) else node.targets
                if any(isinstance(t, ast.Name) and t.id == "code" for t in targets):
                    add(node.value, node.lineno, None)
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                args = node.args.posonlyargs + node.args.args
                defaults = dict(zip(reversed(args), reversed(node.args.defaults), strict=False))
                for arg, default in defaults.items():
                    if arg.arg == "code":
                        add(default, node.lineno, None)
    return found


def test_the_scan_finds_codes_of_every_form() -> None:
    # the test can fail: each form of naming a code is seen
    found = codes_in_source()
    for code in ("cluster-not-found", "no-enabled-cloud", "unknown-key", "mount-destination-refused",
                 "invalid-override", "env-file-not-found", "agent-internal"):  # fmt: skip
        assert code in found, code


def test_every_code_in_the_source_is_registered() -> None:
    missing = {c: sites[:2] for c, sites in codes_in_source().items() if not codes.is_registered(c)}
    assert not missing, f"register these in src/styx/codes.py: {missing}"


def test_every_registered_code_is_used() -> None:
    unused = set(codes.BY_NAME) - set(codes_in_source())
    assert not unused, f"no raising site names {sorted(unused)}: drop them or use them"


def test_codes_are_declared_once_with_a_known_exit_code() -> None:
    names = [c.name for c in codes.CODES]
    assert len(names) == len(set(names))
    for c in codes.CODES:
        assert c.exit_code in codes.EXIT_CODES, c
        assert c.meaning and "\n" not in c.meaning and "|" not in c.meaning, c


def _error_classes() -> list[type[errors.StyxError]]:
    out, todo = [], [errors.StyxError]
    while todo:
        cls = todo.pop()
        out.append(cls)
        todo.extend(cls.__subclasses__())
    return out


def test_error_classes_exit_as_registered() -> None:
    for cls in _error_classes():
        assert codes.BY_NAME[cls.code].exit_code == cls.exit_code, cls


def test_direct_raises_exit_as_registered() -> None:
    # `SpecError(..., code="x")`: the class decides the exit code; the registry must agree.
    classes = {cls.__name__: cls for cls in _error_classes()}
    wrong = []
    for code, sites in codes_in_source().items():
        for where, line, callee in sites:
            cls = classes.get(callee or "")
            if cls is not None and codes.BY_NAME[code].exit_code != cls.exit_code:
                wrong.append((code, where, line, cls.__name__, cls.exit_code))
    assert not wrong


def test_docs_list_exactly_the_registry() -> None:
    doc = (REPO / "docs" / "exit-codes.md").read_text()
    assert doc == codes.markdown(), "run: python scripts/gen_exit_codes.py"
    listed = {line.split("`")[1] for line in doc.splitlines() if line.startswith("| `")}
    assert listed == set(codes.BY_NAME)


@pytest.mark.parametrize("args", [("launch", "--bogus"), ("--bogus",), ("status", "-Z")])
def test_unknown_options_render_like_other_errors(tmp_path: Path, args: tuple[str, ...]) -> None:
    env = {**os.environ, "STYX_HOME": str(tmp_path)}
    r = subprocess.run(
        [sys.executable, "-m", "styx.cli.main", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2
    lines = r.stderr.splitlines()
    assert lines[0].startswith("Error [invalid-usage]: No such option") and lines[1].startswith(
        "Hint: Run `styx"
    )
    assert "Traceback" not in r.stderr and "Usage:" not in r.stderr
