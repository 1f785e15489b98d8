"""Start-up of the ``ablate`` command: the wall time of ``--help``, which every command pays
before it does anything, and of the commands that only read (``runs list``, ``runs show``,
``study show``), which should pay nothing for the libraries they do not use.

Each command is a fresh process running what the ``ablate`` console script runs, with this
interpreter, on the checkout ``--root`` (default: this one); the median of ``--repeats`` runs
is kept. The repeats go round the commands in turn, after one uncounted round that reads the
files into the page cache, so a slow moment of the machine hits every command alike. The
interpreter's bare start (``python -c pass``) is timed too: no command can start faster.

    python benchmarks/bench_startup.py                          # this checkout, 5 repeats
    python benchmarks/bench_startup.py --root /tmp/before --repeats 11 --json before.json
    python benchmarks/bench_startup.py --db /tmp/final0/runs.db   # also the reading commands

Results and the commands that produced them are kept in BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HELPS = ((), ("runs", "list"), ("report",), ("study", "run"))
STUDY = "studies/demo.toml"  # relative to --root, so each checkout reads its own
ENTRY = "from ablate.cli.app import main; main()"  # the console script's code (pyproject.toml)


def cases(db: Path | None) -> list[tuple[str, list[str]]]:
    """(what is shown, the process to run) for the bare interpreter, every command's help and,
    given a runs database, the commands that only read it (run 1 must exist)."""
    commands = [(*command, "--help") for command in HELPS]
    if db is not None:
        commands += [("runs", "list", "--db", str(db)), ("runs", "show", "1", "--db", str(db))]
    commands.append(("study", "show", STUDY))
    timed = [("python -c pass", [sys.executable, "-c", "pass"])]
    for command in commands:
        timed.append((" ".join(("ablate", *command)), [sys.executable, "-c", ENTRY, *command]))
    return timed


def wall_time(argv: list[str], root: Path) -> float:
    """Seconds from start to exit of one process whose ``ablate`` is the one under ``root``."""
    # -c puts the working directory first on sys.path; PYTHONPATH beats the editable install.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (str(root), os.environ.get("PYTHONPATH")) if p)}
    began = time.perf_counter()
    done = subprocess.run(argv, cwd=root, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - began
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} exited {done.returncode}: {done.stderr.strip()}")
    return wall


def measure(root: Path, repeats: int, db: Path | None) -> list[dict]:
    timed = cases(db)
    times: dict[str, list[float]] = {shown: [] for shown, _ in timed}
    for round_ in range(repeats + 1):
        for shown, argv in timed:
            wall = wall_time(argv, root)
            if round_ > 0:
                times[shown].append(wall)
    return [{"command": shown, "median_s": statistics.median(runs), "min_s": min(runs),
             "max_s": max(runs), "runs_s": runs} for shown, runs in times.items()]


def revision(root: Path) -> str:
    """The checkout's commit, ``+changes`` when its working tree differs from it."""
    def git(*args: str) -> str:
        done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True)
        return done.stdout.strip()

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    return commit + ("+changes" if git("status", "--porcelain", "--untracked-files=no") else "")


def table(results: list[dict]) -> str:
    lines = ["| command | median s | min s | max s |", "|---|---|---|---|"]
    for r in results:
        lines.append(f"| `{r['command']}` | {r['median_s']:.2f} | {r['min_s']:.2f} | "
                     f"{r['max_s']:.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=REPO,
                        help="Checkout whose ablate is timed, e.g. a worktree of an older commit.")
    parser.add_argument("--repeats", type=int, default=5, help="Timed runs of each command.")
    parser.add_argument("--db", type=Path,
                        help="Runs database that `runs list` and `runs show 1` read (read-only).")
    parser.add_argument("--json", type=Path, help="Write the results here too.")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error(f"--repeats {args.repeats} is not valid; it must be >= 1")
    root = args.root.resolve()
    report = {"root": str(root), "revision": revision(root), "repeats": args.repeats,
              "python": platform.python_version(), "cpus": os.cpu_count(),
              "command": " ".join(["python", "benchmarks/bench_startup.py",
                                   *(sys.argv[1:] if argv is None else argv)]),
              "results": measure(root, args.repeats,
                                 args.db.resolve() if args.db else None)}
    print(f"{root} at {report['revision']}, median of {args.repeats} runs:")
    print(table(report["results"]))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
