"""The scheduler's cost: claim, heartbeat, record every epoch, finish, with 1, 4 and 16
simulated workers on one runs database (SQLite, and PostgreSQL when a URL is given).

Every worker is a process of its own with its own connection, walking the same list of runs
as real workers do (so claims contend); a "run" trains nothing: its epochs are stub rows.
The point is to show the database is not the bottleneck: a real epoch takes seconds to hours.

    python benchmarks/bench_scheduler.py                          # SQLite, 1/4/16 workers
    python benchmarks/bench_scheduler.py --pg postgresql+psycopg://postgres:postgres@localhost/db
    python benchmarks/bench_scheduler.py --runs 8 --workers 1,2   # smoke run (tests)

Results and the commands that produced them are kept in BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root, run as a script

from ablate.db import ClaimSpec, RunStore  # noqa: E402
from model.metrics import metric_names  # noqa: E402

OPS = ("claim", "heartbeat", "record_epoch", "finish")


def _worker(url: str, study: str, runs: int, epochs: int, start, out) -> None:
    """One simulated worker: every run in order, claimed or skipped, timed per operation."""
    metrics = {name: 1.0 for name in metric_names()}
    times: dict[str, list[float]] = {op: [] for op in OPS}
    with RunStore(url) as store:
        start.wait()
        began = time.perf_counter()
        for i in range(runs):
            t = time.perf_counter()
            claim = store.claim(ClaimSpec(study, f"v{i}", 0, {"i": i}, f"h{i}",
                                          save_dir=f"/runs/{i}"))
            times["claim"].append(time.perf_counter() - t)
            if not claim.claimed:
                continue
            run_id = claim.run.id
            _timed(times["heartbeat"], store.heartbeat, run_id)
            for epoch in range(epochs):
                _timed(times["record_epoch"], store.record_epoch, run_id, epoch,
                       {"loss": 1.0 / (epoch + 1), "val_game0": 10.0})
            _timed(times["finish"], store.finish, run_id, metrics, metrics, epochs - 1, [])
        out.put((time.perf_counter() - began, times))


def _timed(into: list[float], call, *args) -> None:
    t = time.perf_counter()
    call(*args)
    into.append(time.perf_counter() - t)


def simulate(url: str, workers: int, runs: int, epochs: int) -> dict:
    """Run ``workers`` processes over ``runs`` stub runs; timings and the database's count."""
    study = f"bench-{uuid.uuid4().hex[:8]}"
    RunStore(url).close()  # the schema, once, before the workers race to create it
    # fork: the workers start in milliseconds (spawn would import torch 16 times); the parent
    # holds no open connection to share, its engine is disposed above.
    ctx = mp.get_context("fork")
    start, out = ctx.Barrier(workers + 1), ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(url, study, runs, epochs, start, out))
             for _ in range(workers)]
    for p in procs:
        p.start()
    start.wait()
    began = time.perf_counter()
    results = [out.get() for _ in procs]
    wall = time.perf_counter() - began
    for p in procs:
        p.join()
    merged = {op: [x for _, times in results for x in times[op]] for op in OPS}
    with RunStore(url, readonly=True) as store:
        rows = store.list_runs(study)
    return {
        "workers": workers, "runs": runs, "epochs": epochs, "wall_s": wall,
        "runs_per_s": runs / wall,
        "done": sum(r.status == "done" for r in rows), "rows": len(rows),
        **{f"{op}_ms": _stats(merged[op]) for op in OPS},
    }


def _stats(values: list[float]) -> dict[str, float]:
    if not values:
        return {"n": 0, "median": float("nan"), "p95": float("nan")}
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
    return {"n": len(values), "median": 1e3 * statistics.median(ordered), "p95": 1e3 * p95}


def table(results: list[dict]) -> str:
    head = ("| database | workers | runs | wall s | runs/s | claim ms (median/p95) | "
            "heartbeat ms | record_epoch ms | finish ms |")
    lines = [head, "|" + "---|" * 9]
    for r in results:
        cells = [f"{r[f'{op}_ms']['median']:.1f} / {r[f'{op}_ms']['p95']:.1f}" for op in OPS]
        lines.append(f"| {r['database']} | {r['workers']} | {r['runs']} | {r['wall_s']:.2f} | "
                     f"{r['runs_per_s']:.1f} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", default="1,4,16", help="Worker counts, e.g. 1,4,16.")
    parser.add_argument("--runs", type=int, default=64, help="Runs in the simulated study.")
    parser.add_argument("--epochs", type=int, default=5, help="Stub epochs recorded per run.")
    parser.add_argument("--pg", help="Also on this PostgreSQL URL (its own study name).")
    parser.add_argument("--json", type=Path, help="Write the results here too.")
    args = parser.parse_args(argv)
    counts = [int(n) for n in args.workers.split(",")]
    results = []
    with tempfile.TemporaryDirectory(prefix="ablate-bench-") as folder:
        targets = [("SQLite", str(Path(folder) / "runs.db"))]
        targets += [("PostgreSQL", args.pg)] if args.pg else []
        for name, url in targets:
            for n in counts:
                results.append({"database": name, **simulate(url, n, args.runs, args.epochs)})
    print(table(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
