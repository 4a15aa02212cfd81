"""Optimizer benchmarks on the GCP, Azure and Lambda catalogs together (~88,000 rows).

* cold: a fresh interpreter imports Styx, loads the three catalogs and optimizes one task
  (timed inside the process from before the first Styx import, and as the whole process);
* warm: the same process optimizes again (median of many runs) for several requests;
* a 50-task DAG with egress between dependent tasks (ILP), warm catalogs and cold;
* baseline in the same run: a plain pandas full scan (read the CSVs; then a boolean mask over
  all rows and an argmin per request), when pandas is installed.

Run: python bench/bench_optimizer.py [--runs 50] [--catalog ../shared/catalog]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CLOUDS = ["gcp", "azure", "lambda"]
REQUESTS = {
    "A100:8": "resources: {accelerators: A100:8}",
    "H100:1 spot": "resources: {accelerators: H100:1, use_spot: true}",
    "cpus 4+ memory 16+": "resources: {cpus: 4+, memory: 16+}",
    "T4 in gcp/us-central1": "resources: {accelerators: T4, infra: gcp/us-central1}",
    "any_of A100:8|H100:8": "resources: {any_of: [{accelerators: A100:8}, {accelerators: H100:8}]}",
}
COLD = """
import time, json, sys
t0 = time.perf_counter()
from styx.optimizer import optimize_task
from styx.spec.task import Task
task = Task.from_yaml_str(sys.argv[1])
plan = optimize_task(task, clouds=["gcp", "azure", "lambda"])
t1 = time.perf_counter()
print(json.dumps({"inside": t1 - t0, "choice": plan.chosen.describe()}))
"""
COLD_DAG = """
import sys, time, json
sys.path.insert(0, sys.argv[1])
t0 = time.perf_counter()
from bench_optimizer import random_dag
from styx.optimizer import optimize_dag
plan = optimize_dag(random_dag(50), clouds=["gcp", "azure", "lambda"])
print(json.dumps({"inside": time.perf_counter() - t0, "method": plan.method}))
"""


def default_catalog() -> Path:
    return Path(__file__).resolve().parents[1].parent / "shared" / "catalog"


def ms(seconds: float) -> str:
    return f"{seconds * 1000:8.1f} ms"


def cold_runs(request: str, runs: int, env: dict[str, str]) -> tuple[list[float], list[float], str]:
    inside, whole, choice = [], [], ""
    for _ in range(runs):
        t0 = time.perf_counter()
        out = subprocess.run(
            [sys.executable, "-c", COLD, request],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        whole.append(time.perf_counter() - t0)
        data = json.loads(out)
        inside.append(data["inside"])
        choice = data["choice"]
    return inside, whole, choice


def seam_choices():  # type: ignore[no-untyped-def]
    """The same clouds through the provider seam, as launch passes them: their real
    declarations (capabilities checked), made launchable and enabled, plus every other known
    infra as it is today (priced only when cheaper places need naming)."""
    from styx.infra import InfraChoice
    from styx.providers import registry

    return [
        InfraChoice(i.name, i.title, i.capabilities, i.catalog, True, i.name in CLOUDS, "bench")
        for i in registry.infos()
        if i.catalog is not None
    ]


def warm(runs: int, *, seam: bool = False) -> dict[str, tuple[float, str]]:
    from styx.optimizer import optimize_task
    from styx.spec.task import Task

    kw = {"choices": seam_choices()} if seam else {"clouds": CLOUDS}
    out = {}
    for name, text in REQUESTS.items():
        task = Task.from_yaml_str(text)
        optimize_task(task, **kw)  # first call sorts the offers it touches
        samples = []
        for _ in range(runs):
            t0 = time.perf_counter()
            plan = optimize_task(task, **kw)
            samples.append(time.perf_counter() - t0)
        out[name] = (statistics.median(samples), plan.chosen.describe())
    return out


def pandas_baseline(root: Path, runs: int) -> tuple[float, dict[str, float]] | None:
    try:
        import pandas as pd
    except ImportError:
        return None
    t0 = time.perf_counter()
    frames = []
    for c in CLOUDS:
        path = root / c / "vms.csv"
        header = path.open().readline().strip().split(",")
        # Azure's Generation column holds an unquoted "V1,V2" in some rows: one spare column.
        frame = pd.read_csv(path, names=[*header, "_spare"], skiprows=1)
        frames.append(frame.assign(Cloud=c))
    df = pd.concat(frames, ignore_index=True)
    load = time.perf_counter() - t0
    masks = {
        "A100:8": lambda d: (d.AcceleratorName == "A100") & (d.AcceleratorCount == 8),
        "H100:1 spot": lambda d: (d.AcceleratorName == "H100") & (d.AcceleratorCount == 1) & d.SpotPrice.notna(),
        "cpus 4+ memory 16+": lambda d: (d.vCPUs >= 4) & (d.MemoryGiB >= 16) & d.AcceleratorName.isna(),
        "T4 in gcp/us-central1": lambda d: (d.AcceleratorName == "T4") & (d.Region == "us-central1"),
        "any_of A100:8|H100:8": lambda d: d.AcceleratorName.isin(["A100", "H100"]) & (d.AcceleratorCount == 8),
    }  # fmt: skip
    scans = {}
    for name, mask in masks.items():
        column = "SpotPrice" if "spot" in name else "Price"
        samples = []
        for _ in range(runs):
            t0 = time.perf_counter()
            hit = df[mask(df)]
            hit.loc[hit[column].idxmin()]
            samples.append(time.perf_counter() - t0)
        scans[name] = statistics.median(samples)
    return load, scans


def random_dag(n: int, seed: int = 1):  # type: ignore[no-untyped-def]
    """n tasks; each depends on 1-3 earlier ones (a general DAG); outputs 0-5000 GB."""
    from styx.spec.dag import Dag
    from styx.spec.task import Task

    rng = random.Random(seed)
    kinds = [
        "{cpus: 4+}", "{cpus: 16+, memory: 64+}", "{accelerators: A100:8}", "{accelerators: T4:1}",
        "{accelerators: H100:1, use_spot: true}", "{accelerators: A10:1}", "{accelerators: L4:1}",
        "{any_of: [{accelerators: A100:1}, {accelerators: H100:1}]}",
    ]  # fmt: skip
    dag = Dag(name="bench")
    tasks = []
    for i in range(n):
        gb = rng.choice([0, 10, 200, 1000, 5000])
        text = f"name: t{i}\nresources: {rng.choice(kinds)}\n"
        if gb:
            text += f"outputs: {{gs://b/t{i}: {gb}}}\n"
        tasks.append(dag.add(Task.from_yaml_str(text)))
        for j in rng.sample(range(i), k=min(i, rng.randint(1, 3))):
            dag.add_edge(tasks[j], tasks[i])
    return dag


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--cold-runs", type=int, default=5)
    parser.add_argument("--catalog", type=Path, default=default_catalog())
    args = parser.parse_args()
    root = args.catalog.resolve()
    os.environ["STYX_CATALOG_DIR"] = str(root)
    os.environ["STYX_HOME"] = tempfile.mkdtemp(prefix="styx-bench-")
    rows = sum(sum(1 for _ in (root / c / "vms.csv").open()) - 1 for c in CLOUDS)
    print(f"Catalogs: {', '.join(CLOUDS)} from {root} ({rows:,} rows)\n")

    baseline = pandas_baseline(root, args.runs)
    env = dict(os.environ)
    print("One task, cold (fresh interpreter: imports + catalog load + optimize):")
    inside, whole, choice = cold_runs(REQUESTS["A100:8"], args.cold_runs, env)
    print(f"  A100:8  in-process {ms(statistics.median(inside))}  whole process {ms(statistics.median(whole))}"
          f"  -> {choice}")  # fmt: skip
    inside2, _, choice2 = cold_runs(REQUESTS["cpus 4+ memory 16+"], args.cold_runs, env)
    print(f"  cpus 4+ memory 16+  in-process {ms(statistics.median(inside2))}  -> {choice2}")
    if baseline:
        print(f"  baseline: pandas read_csv of the same files {ms(baseline[0])}"
              f"  (ratio {statistics.median(inside) / baseline[0]:.2f}x)")  # fmt: skip

    seam = warm(args.runs, seam=True)
    print(f"\nOne task, warm, through the provider seam (median of {args.runs}):")
    for name, (median, chosen) in seam.items():
        print(f"  {name:<24} {ms(median)}  -> {chosen}")
    print(f"\nOne task, warm (median of {args.runs}):")
    for name, (median, chosen) in warm(args.runs).items():
        extra = ""
        if baseline:
            scan = baseline[1][name]
            extra = f"  pandas full scan {ms(scan)}  ratio {median / scan:5.2f}x"
        print(f"  {name:<24}{ms(median)}{extra}  -> {chosen}")

    from styx.catalog.loader import clear_cache
    from styx.optimizer import optimize_dag

    dag = random_dag(50)
    t0 = time.perf_counter()
    clear_cache()
    plan = optimize_dag(dag, clouds=CLOUDS)
    cold_dag = time.perf_counter() - t0
    samples = []
    for _ in range(max(3, args.runs // 10)):
        t0 = time.perf_counter()
        plan = optimize_dag(dag, clouds=CLOUDS)
        samples.append(time.perf_counter() - t0)
    print(f"\n50-task DAG, {len(dag.edges)} edges, egress counted (solved by {plan.method}):")
    fresh = []
    for _ in range(args.cold_runs):
        out = subprocess.run(
            [sys.executable, "-c", COLD_DAG, str(Path(__file__).parent)],
            env=env, capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        fresh.append(json.loads(out)["inside"])
    print(f"  warm catalogs {ms(statistics.median(samples))}   reloading catalogs {ms(cold_dag)}"
          f"   fresh interpreter (imports, catalogs, solver) {ms(statistics.median(fresh))}")  # fmt: skip
    print(f"  total ${plan.total_cost:,.2f}, egress ${plan.egress_cost:,.2f}, "
          f"{len({p.chosen.infra for p in plan.tasks})} clouds used")  # fmt: skip


if __name__ == "__main__":
    main()
