"""Which catalog index? Load time and query time of four structures over the same ~88k rows.

1. shapes: rows grouped by instance type, offers as parallel lists sorted by price once
   (what ``styx.catalog.index`` does; standard library only);
2. flat rows: one tuple per row, every query scans all of them (standard library);
3. numpy columns: one array per column, a query is boolean masks and an argmin;
4. pandas: ``read_csv`` and a boolean-mask full scan (the baseline SkyPilot's approach resembles).

Queries: cheapest A100:8 row; cheapest CPU-only row with >= 4 vCPUs and >= 16 GB; cheapest T4 row
in us-central1 (GCP accelerator rows alone, no host join, so that all four answer the same thing).
Run: python bench/bench_optimizer_index.py [--runs 30] [--catalog ../shared/catalog]
"""

from __future__ import annotations

import argparse
import csv
import math
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

CLOUDS = ["gcp", "azure", "lambda"]
GPU_HOSTS = ("a2-", "a3-", "a4-", "g2-")  # GCP hosts priced without their GPUs: never CPU-only


def cpu_only(instance_type: str, acc: str) -> bool:
    return (
        not acc and not instance_type.startswith(GPU_HOSTS) and not instance_type.endswith("-tpu")
    )


def read_rows(root: Path) -> list[tuple[Any, ...]]:
    out = []
    for cloud in CLOUDS:
        with (root / cloud / "vms.csv").open(newline="") as f:
            reader = csv.reader(f)
            col = {n: i for i, n in enumerate(next(reader))}
            for r in reader:
                acc = r[col["AcceleratorName"]]
                out.append((
                    cloud, r[col["InstanceType"]], float(r[col["vCPUs"]] or "nan"),
                    float(r[col["MemoryGiB"]] or "nan"), acc,
                    float(r[col["AcceleratorCount"]] or "nan") if acc else 0.0,
                    r[col["Region"]], float(r[col["Price"]] or "nan"),
                ))  # fmt: skip
    return out


def flat_queries(rows: list[tuple[Any, ...]]) -> dict[str, Callable[[], float]]:
    def best(pred: Callable[[tuple[Any, ...]], bool]) -> float:
        return min((r[7] for r in rows if pred(r) and not math.isnan(r[7])), default=math.nan)

    return {
        "A100:8": lambda: best(lambda r: r[4] == "A100" and r[5] == 8),
        "cpus 4+ memory 16+": lambda: best(
            lambda r: cpu_only(r[1], r[4]) and r[2] >= 4 and r[3] >= 16
        ),
        "T4 in us-central1": lambda: best(lambda r: r[4] == "T4" and r[6] == "us-central1"),
    }


def shape_queries() -> dict[str, Callable[[], float]]:
    from styx.catalog.loader import get_catalog

    cats = [get_catalog(c) for c in CLOUDS]
    gcp = cats[0]

    def cheapest(shapes: Any, region: str | None = None) -> float:
        best = math.nan
        for s in shapes:
            for i in s.offers.order(False):
                if region is None or s.offers.regions[i] == region:
                    p = s.offers.prices[i]
                    best = p if math.isnan(best) or p < best else best
                    break
        return best

    def gcp_rows(name: str, count: float | None, region: str | None) -> float:
        # GCP's accelerator rows alone (no host join), as the other structures see them
        offers = gcp._gcp.offers  # type: ignore[union-attr]
        return min((o.prices[i] for (n, c), o in offers.items() if n == name and count in (None, c)
                    for i in o.order(False) if region in (None, o.regions[i])), default=math.inf)  # fmt: skip

    def t4() -> float:
        return gcp_rows("T4", None, "us-central1")

    def a100() -> float:
        shapes = [s for c in cats[1:] for s in c.shapes_for("A100") if s.accelerator_count == 8]
        return min(cheapest(shapes), gcp_rows("A100", 8, None))

    return {
        "A100:8": a100,
        "cpus 4+ memory 16+": lambda: cheapest(
            s for c in cats for s in c.cpu_shapes if s.vcpus >= 4 and s.memory_gb >= 16
        ),
        "T4 in us-central1": t4,
    }


def numpy_index(rows: list[tuple[Any, ...]]) -> tuple[Any, dict[str, Callable[[], float]]]:
    import numpy as np

    cols = list(zip(*rows, strict=True))
    acc, region = np.array(cols[4]), np.array(cols[6])
    cpu = np.array([cpu_only(t, a) for t, a in zip(cols[1], cols[4], strict=True)])
    count, vcpus, mem, price = (np.array(cols[i], dtype=float) for i in (5, 2, 3, 7))

    def best(mask: Any) -> float:
        hit = price[mask & ~np.isnan(price)]
        return float(hit.min()) if hit.size else math.nan

    return np, {
        "A100:8": lambda: best((acc == "A100") & (count == 8)),
        "cpus 4+ memory 16+": lambda: best(cpu & (vcpus >= 4) & (mem >= 16)),
        "T4 in us-central1": lambda: best((acc == "T4") & (region == "us-central1")),
    }


def pandas_index(root: Path) -> dict[str, Callable[[], float]] | None:
    try:
        import pandas as pd
    except ImportError:
        return None
    frames = []
    for cloud in CLOUDS:
        path = root / cloud / "vms.csv"
        header = path.open().readline().strip().split(",")
        frames.append(pd.read_csv(path, names=[*header, "_spare"], skiprows=1))
    df = pd.concat(frames, ignore_index=True)
    kind = df.InstanceType.fillna("")
    df["CpuOnly"] = (
        df.AcceleratorName.isna() & ~kind.str.startswith(GPU_HOSTS) & ~kind.str.endswith("-tpu")
    )
    return {
        "A100:8": lambda: df[(df.AcceleratorName == "A100") & (df.AcceleratorCount == 8)].Price.min(),
        "cpus 4+ memory 16+": lambda: df[df.CpuOnly & (df.vCPUs >= 4) & (df.MemoryGiB >= 16)].Price.min(),
        "T4 in us-central1": lambda: df[(df.AcceleratorName == "T4") & (df.Region == "us-central1")].Price.min(),
    }  # fmt: skip


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    value = fn()
    return time.perf_counter() - t0, value


def main() -> None:
    import os

    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument(
        "--catalog",
        type=Path,
        default=Path(__file__).resolve().parents[1].parent / "shared" / "catalog",
    )
    args = parser.parse_args()
    root = args.catalog.resolve()
    os.environ["STYX_CATALOG_DIR"] = str(root)
    loads: dict[str, float] = {}
    queries: dict[str, dict[str, Callable[[], float]]] = {}
    loads["shapes (stdlib)"], queries["shapes (stdlib)"] = timed(shape_queries)
    loads["flat rows (stdlib)"], rows = timed(lambda: read_rows(root))
    queries["flat rows (stdlib)"] = flat_queries(rows)
    t_np, (_, queries["numpy columns"]) = timed(lambda: numpy_index(rows))
    loads["numpy columns"] = loads["flat rows (stdlib)"] + t_np
    t_pd, pd_queries = timed(lambda: pandas_index(root))
    if pd_queries is not None:
        loads["pandas"], queries["pandas"] = t_pd, pd_queries
    names = list(queries["shapes (stdlib)"])
    print(f"{'structure':<20}{'load':>10}" + "".join(f"{n:>22}" for n in names))
    answers: dict[str, list[float]] = {}
    for label, qs in queries.items():
        cells = []
        for name in names:
            qs[name]()  # warm (sorts offers on first use)
            samples = [timed(qs[name])[0] for _ in range(args.runs)]
            answers.setdefault(name, []).append(float(qs[name]()))
            cells.append(f"{statistics.median(samples) * 1000:>19.3f} ms")
        print(f"{label:<20}{loads[label] * 1000:>7.0f} ms" + "".join(cells))
    for name, values in answers.items():
        assert all(math.isclose(v, values[0]) for v in values), (name, values)
    print(
        "(load includes importing numpy or pandas; numpy load = reading the rows + building"
        " arrays; every structure gave the same answers)"
    )


if __name__ == "__main__":
    main()
