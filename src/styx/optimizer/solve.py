"""Exact joint placement: pick one option per task minimising node weights plus edge weights.

Problem: tasks ``0..n-1``, each with option weights ``node[u][a]``; for each dependency edge
``(u, v)`` a matrix ``edge[(u, v)][a][b] >= 0`` (egress when ``u`` runs on option ``a`` and ``v``
on ``b``). Minimise ``sum node[u][x_u] + sum edge[(u, v)][x_u][x_v]``.

* no weighted edges: each task independently;
* a chain ``0 -> 1 -> ... -> n-1``: dynamic programming, O(n k^2);
* otherwise an ILP: binaries ``x[u, a]`` with ``sum_a x[u, a] = 1`` and, per edge and option
  pair with a positive weight, ``y >= x[u, a] + x[v, b] - 1`` (``y`` in [0, 1], minimised, so it
  equals the product). Solved by HiGHS through ``highspy``, or SciPy's ``milp`` (also HiGHS);
  without either, a branch and bound in pure Python, exact on small DAGs and stopped after
  :data:`SEARCH_NODE_LIMIT` nodes on large ones (then the best assignment found is used).
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator

Matrix = list[list[float]]
EdgeWeights = dict[tuple[int, int], Matrix]
SEARCH_NODE_LIMIT = 20_000  # the bound costs O(n k deg) per node: about a second in all


def solve(
    node: list[list[float]], edges: EdgeWeights, labels: list[list[str]] | None = None
) -> tuple[list[int], str]:
    """The optimal option per task and the method used (``independent``, ``dp``, ``ilp``,
    ``milp``, ``search``; or ``heuristic`` when, without a MILP solver, the search stopped
    before proving its best assignment optimal). ``labels`` names each option's group (its
    infra kind); the search starts from "every task in one group" too."""
    weighted = {k: m for k, m in edges.items() if any(w > 0 for row in m for w in row)}
    if not weighted:
        return [min(range(len(ws)), key=ws.__getitem__) for ws in node], "independent"
    if set(weighted) <= {(i, i + 1) for i in range(len(node) - 1)}:
        return chain_dp(node, weighted), "dp"
    try:
        return ilp_highspy(node, weighted), "ilp"
    except ImportError:
        pass
    try:
        return ilp_scipy(node, weighted), "milp"
    except ImportError:
        choice, proven = branch_and_bound(node, weighted, labels)
        return choice, "search" if proven else "heuristic"


def total(node: list[list[float]], edges: EdgeWeights, choice: list[int]) -> float:
    """The objective of an assignment."""
    value = sum(node[u][a] for u, a in enumerate(choice))
    return value + sum(m[choice[u]][choice[v]] for (u, v), m in edges.items())


def chain_dp(node: list[list[float]], edges: EdgeWeights) -> list[int]:
    """Exact for edges only between consecutive tasks ``(i, i + 1)``."""
    n = len(node)
    best = list(node[0])
    back: list[list[int]] = [[]]
    for i in range(1, n):
        m = edges.get((i - 1, i))
        row, arg = [], []
        for b, wb in enumerate(node[i]):
            if m is None:
                a = min(range(len(best)), key=best.__getitem__)
                row.append(best[a] + wb)
            else:
                a = min(range(len(best)), key=lambda a, b=b: best[a] + m[a][b])  # type: ignore[misc]
                row.append(best[a] + m[a][b] + wb)
            arg.append(a)
        best, back = row, [*back, arg]
    choice = [min(range(len(best)), key=best.__getitem__)]
    for i in range(n - 1, 0, -1):
        choice.append(back[i][choice[-1]])
    return choice[::-1]


def _model(
    node: list[list[float]], edges: EdgeWeights
) -> tuple[list[float], list[bool], list[tuple[list[int], list[float], float, float]]]:
    """Costs, integrality and rows (indices, values, lower, upper) of the ILP."""
    offset: list[int] = []
    costs: list[float] = []
    for ws in node:
        offset.append(len(costs))
        costs.extend(ws)
    integer = [True] * len(costs)
    rows: list[tuple[list[int], list[float], float, float]] = [
        (list(range(offset[u], offset[u] + len(ws))), [1.0] * len(ws), 1.0, 1.0)
        for u, ws in enumerate(node)
    ]
    for (u, v), m in edges.items():
        for a, row in enumerate(m):
            for b, w in enumerate(row):
                if w <= 0:
                    continue
                y = len(costs)
                costs.append(w)
                integer.append(False)
                rows.append(([y, offset[u] + a, offset[v] + b], [1.0, -1.0, -1.0], -1.0, math.inf))
    return costs, integer, rows


def _decode(node: list[list[float]], values: list[float]) -> list[int]:
    choice, at = [], 0
    for ws in node:
        part = values[at : at + len(ws)]
        choice.append(max(range(len(ws)), key=part.__getitem__))
        at += len(ws)
    return choice


@contextlib.contextmanager
def _quiet_stdout() -> Iterator[None]:
    """HiGHS prints a banner from C on its first use; keep it off the user's terminal."""
    try:
        fd = os.dup(1)
    except OSError:
        yield
        return
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 1)
            yield
    finally:
        os.dup2(fd, 1)
        os.close(fd)


def ilp_highspy(node: list[list[float]], edges: EdgeWeights) -> list[int]:
    """Solve the ILP with HiGHS (raises ImportError without ``highspy``)."""
    import highspy  # type: ignore[import-untyped,import-not-found,unused-ignore]
    import numpy as np  # type: ignore[import-not-found,unused-ignore]

    costs, integer, rows = _model(node, edges)
    with _quiet_stdout():
        h = highspy.Highs()  # type: ignore[no-untyped-call,unused-ignore]
    h.setOptionValue("output_flag", False)
    n = len(costs)
    h.addVars(n, np.zeros(n), np.ones(n))
    h.changeColsCost(n, np.arange(n, dtype=np.int32), np.asarray(costs, dtype=np.float64))
    ints = np.asarray([i for i, flag in enumerate(integer) if flag], dtype=np.int32)
    h.changeColsIntegrality(len(ints), ints, np.full(len(ints), highspy.HighsVarType.kInteger))
    lower = np.asarray([r[2] for r in rows], dtype=np.float64)
    upper = np.asarray([r[3] for r in rows], dtype=np.float64)
    starts = np.cumsum([0] + [len(r[0]) for r in rows[:-1]]).astype(np.int32)
    index = np.asarray([i for r in rows for i in r[0]], dtype=np.int32)
    value = np.asarray([v for r in rows for v in r[1]], dtype=np.float64)
    h.addRows(len(rows), lower, upper, len(index), starts, index, value)
    h.run()
    if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
        raise RuntimeError(f"HiGHS did not solve the placement: {h.getModelStatus()}")
    return _decode(node, list(h.getSolution().col_value))


def ilp_scipy(node: list[list[float]], edges: EdgeWeights) -> list[int]:
    """Solve the ILP with ``scipy.optimize.milp`` (raises ImportError without SciPy)."""
    import numpy as np  # type: ignore[import-not-found,unused-ignore]
    from scipy.optimize import (  # type: ignore[import-untyped,import-not-found,unused-ignore]
        Bounds,
        LinearConstraint,
        milp,
    )
    from scipy.sparse import csr_array  # type: ignore[import-untyped,import-not-found,unused-ignore]

    costs, integer, rows = _model(node, edges)
    data, cols, ptr = [], [], [0]
    for idx, vals, _, _ in rows:
        cols.extend(idx)
        data.extend(vals)
        ptr.append(len(cols))
    matrix = csr_array((data, cols, ptr), shape=(len(rows), len(costs)))
    lower = np.asarray([r[2] for r in rows])
    upper = np.asarray([r[3] for r in rows])
    result = milp(
        np.asarray(costs),
        integrality=np.asarray(integer, dtype=int),
        bounds=Bounds(0, 1),
        constraints=LinearConstraint(matrix, lower, upper),
    )
    if not result.success:
        raise RuntimeError(f"SciPy's milp did not solve the placement: {result.message}")
    return _decode(node, list(result.x))


def local_search(node: list[list[float]], edges: EdgeWeights, start: list[int]) -> list[int]:
    """Improve ``start`` one task at a time (each takes its best option given its neighbours)
    until no single change helps: a good first bound for the search."""
    around: dict[int, list[tuple[int, Matrix, bool]]] = {}
    for (u, v), m in edges.items():
        around.setdefault(u, []).append((v, m, True))
        around.setdefault(v, []).append((u, m, False))
    choice = list(start)
    for _ in range(100):
        changed = False
        for i, ws in enumerate(node):

            def cost(a: int, i: int = i, ws: list[float] = ws) -> float:
                links = around.get(i, ())
                return ws[a] + sum(
                    m[a][choice[j]] if out else m[choice[j]][a] for j, m, out in links
                )

            best = min(range(len(ws)), key=cost)
            if cost(best) < cost(choice[i]) - 1e-12:
                choice[i], changed = best, True
        if not changed:
            break
    return choice


def _seeds(node: list[list[float]], labels: list[list[str]] | None) -> list[list[int]]:
    cheapest = [min(range(len(ws)), key=ws.__getitem__) for ws in node]
    seeds = [cheapest]
    for group in sorted({g for row in labels or [] for g in row}):
        seeds.append(
            [
                row.index(group) if group in row else cheapest[u]
                for u, row in enumerate(labels or [])
            ]
        )
    return seeds


def branch_and_bound(
    node: list[list[float]], edges: EdgeWeights, labels: list[list[str]] | None = None
) -> tuple[list[int], bool]:
    """Depth-first search over tasks in index order. The bound adds, for every task not yet
    placed, its cheapest option given the edges from tasks already placed (edges between
    unplaced tasks cost >= 0). Returns the best assignment and whether it is proven optimal
    (False when :data:`SEARCH_NODE_LIMIT` nodes were visited first)."""
    n = len(node)
    into: dict[int, list[tuple[int, Matrix]]] = {}
    for (u, v), m in edges.items():
        first, second = min(u, v), max(u, v)
        matrix = m if u < v else [list(col) for col in zip(*m, strict=True)]
        into.setdefault(second, []).append((first, matrix))
    starts = [local_search(node, edges, seed) for seed in _seeds(node, labels)]
    best = min(starts, key=lambda c: total(node, edges, c))
    best_value = total(node, edges, best)
    order = [sorted(range(len(ws)), key=ws.__getitem__) for ws in node]
    choice = [0] * n
    visited = 0

    def bound(i: int) -> float:
        """Lower bound of tasks i..n-1 given choice[:i]."""
        low = 0.0
        for j in range(i, n):
            links = [(u, m) for u, m in into.get(j, ()) if u < i]
            low += min(w + sum(m[choice[u]][b] for u, m in links) for b, w in enumerate(node[j]))
        return low

    def visit(i: int, value: float) -> None:
        nonlocal best_value, best, visited
        visited += 1
        if i == n:
            if value < best_value - 1e-12:
                best_value, best = value, list(choice)
            return
        for a in order[i]:
            if visited > SEARCH_NODE_LIMIT:
                return
            step = node[i][a] + sum(m[choice[u]][a] for u, m in into.get(i, ()))
            choice[i] = a
            if value + step + bound(i + 1) >= best_value - 1e-12:
                continue
            visit(i + 1, value + step)

    visit(0, 0.0)
    return best, visited <= SEARCH_NODE_LIMIT
