"""`ablate launch slurm|status`: the batch script, the checks before submitting, the workers
through submitit's local executor, and (where `sbatch` answers) a real single-node Slurm."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import submitit
from conftest import REPO, VARIANTS, cli_env, invoke, ok, runs_json
from test_workers import rows_of, wait_for

from ablate.cli.app import app
from ablate.cli.launch import app as launch_app
from ablate.errors import UsageError
from ablate.launch.checks import local_path_warning, mount_of
from ablate.launch.jobs import StudyWorker
from ablate.launch.slurm import minutes
from ablate.run.execute import execute
from ablate.run.hooks import Hooks
from ablate.study.plan import plan
from ablate.study.study import load_study

# Until ablate/cli.py registers `ablate launch` (its owner does), the tests add it themselves.
if "launch" not in {group.name for group in app.registered_groups}:
    app.add_typer(launch_app, name="launch")

PG_URL = "postgresql://u@h/db"  # never reached: a dry run opens no database


def test_dry_run_prints_an_array_of_one_gpu_tasks(in_tmp):
    """The done criterion: 8 tasks of one GPU each, nothing submitted, nothing opened."""
    ok("data", "synth", "rgbtcc")
    result = ok("launch", "slurm", str(REPO / "studies" / "rgbtcc.toml"), "--workers", "8",
                "--db", PG_URL, "--data-path", "rgbtcc", "--set", "pretrained=none",
                "--dry-run")
    script = result.stdout
    assert script.startswith("#!/bin/bash")
    assert "#SBATCH --array=0-7%8\n" in script
    assert "#SBATCH --gpus-per-node=1\n" in script and "#SBATCH --ntasks-per-node=1\n" in script
    assert "#SBATCH --time=1440\n" in script and "#SBATCH --signal=USR2@120\n" in script
    assert "#SBATCH --job-name=ablate-rgbtcc\n" in script
    assert "-m submitit.core._submit" in script
    assert not (in_tmp / "slurm").exists() and not (in_tmp / "runs.db").exists()


def test_dry_run_works_offline_on_a_machine_without_slurm(in_tmp, monkeypatch):
    """The RGBT-CC study as written (ImageNet weights from the torch cache, which is empty
    here): no srun or sbatch on PATH, no network, no database; the script and the array."""
    import model.backbones

    ok("data", "synth", "rgbtcc", "--n", "4")
    bare = in_tmp / "bin"  # a PATH with python's folder only: no Slurm command anywhere
    bare.mkdir()
    monkeypatch.setenv("PATH", str(bare))
    monkeypatch.setenv("TORCH_HOME", str(in_tmp / "torch"))

    def no_network(*args, **kwargs):
        raise AssertionError("a dry run tried to download the pretrained weights")

    monkeypatch.setattr(model.backbones, "download_torchvision_weights", no_network)
    assert shutil.which("srun") is None and shutil.which("sbatch") is None
    result = ok("launch", "slurm", str(REPO / "studies" / "rgbtcc.toml"), "--workers", "4",
                "--seeds", "2", "--variants", "A,G", "--db", PG_URL, "--data-path", "rgbtcc",
                "--dry-run")
    script, _, array = result.stdout.partition("# Job array: ")
    assert script.startswith("#!/bin/bash") and "#SBATCH --array=0-3%4\n" in script
    lines = array.splitlines()
    assert lines[0] == "4 task(s) of 1 GPU(s); each claims work from the runs database until " \
                       "none is left."
    assert lines[1] == "# Runs (4):"
    assert [line.split(":")[0] for line in lines[2:]] == [
        "#   A seed 0", "#   G seed 0", "#   A seed 1", "#   G seed 1"]
    assert all(f"{in_tmp / 'runs' / 'rgbtcc'}/" in line for line in lines[2:])
    assert sorted(p.name for p in in_tmp.iterdir()) == ["bin", "rgbtcc"], "nothing written"


def test_dry_run_of_tuning_workers_names_the_trials(in_tmp):
    ok("data", "synth", "rgbtcc", "--n", "4")
    result = ok("launch", "slurm", str(REPO / "studies" / "rgbtcc.toml"), "--tune",
                "--n-trials", "64", "--workers", "8", "--db", PG_URL, "--set", "pretrained=none",
                "--data-path", "rgbtcc", "--dry-run")
    assert result.stdout.endswith("# Tuning: 64 trial(s) of variant G in all.\n")
    assert not (in_tmp / "runs.db").exists()


def test_dry_run_passes_the_cluster_options(tiny_study, in_tmp):
    script = ok("launch", "slurm", str(tiny_study), "--workers", "3", "--gpus-per-worker", "2",
                "--cpus-per-worker", "6", "--partition", "gpu", "--account", "lab",
                "--time", "2-00:00", "--db", PG_URL, "--dry-run").stdout
    for line in ("--array=0-2%3", "--gpus-per-node=2", "--cpus-per-task=6", "--partition=gpu",
                 "--account=lab", "--time=2880"):
        assert f"#SBATCH {line}\n" in script


@pytest.mark.parametrize("db", [None, "runs.db", "sqlite:///x.db"])
def test_sqlite_is_refused_for_several_nodes(tiny_study, in_tmp, db):
    result = invoke("launch", "slurm", str(tiny_study), "--workers", "8", "--dry-run",
                    *(["--db", db] if db else []))
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: --db ")
    assert "SQLite" in lines[0] and "network file systems" in lines[0]
    assert "postgresql+psycopg://" in lines[0]


@pytest.mark.parametrize(("args", "message"), [
    (["--workers", "0"], "--workers 0 is not valid"),
    (["--gpus-per-worker", "-1"], "--gpus-per-worker -1 is not valid"),
    (["--time", "soon"], "--time 'soon' is not a Slurm time limit"),
    (["--time", "0"], "at least a minute"),
])
def test_bad_launch_options_are_one_error_line(tiny_study, in_tmp, args, message):
    result = invoke("launch", "slurm", str(tiny_study), "--db", PG_URL, "--dry-run", *args)
    assert result.exit_code == 1 and result.output.count("Error:") == 1
    assert message in result.output


@pytest.mark.parametrize(("text", "expected"), [
    ("90", 90), ("24:00:00", 1440), ("1:30", 2), ("0:30:01", 31), ("2-00:00", 2880),
    ("1-12", 2160), ("1-0:0:1", 1441)])
def test_slurm_time_limits_in_minutes(text, expected):
    assert minutes(text) == expected


def test_bad_time_limit():
    with pytest.raises(UsageError):
        minutes("1h")


MOUNTS = """\
/dev/sda1 / ext4 rw 0 0
fs1:/export/home /home nfs4 rw 0 0
lustre@tcp:/scratch /scratch lustre rw 0 0
tmpfs /scratch/tmp tmpfs rw 0 0
"""


def test_checkpoint_folder_on_a_local_file_system_is_warned_about():
    assert mount_of(Path("/home/me/runs"), MOUNTS) == ("/home", "nfs4")
    assert mount_of(Path("/scratch/tmp/x"), MOUNTS) == ("/scratch/tmp", "tmpfs")
    assert mount_of(Path("/homework"), MOUNTS) == ("/", "ext4")
    assert local_path_warning(Path("/home/me/runs"), MOUNTS) is None
    assert local_path_warning(Path("/scratch/runs"), MOUNTS) is None
    warning = local_path_warning(Path("/scratch/tmp/runs"), MOUNTS)
    assert warning.startswith("Warning: checkpoint folder /scratch/tmp/runs is on a local file "
                              "system (tmpfs at /scratch/tmp)")
    assert "--save-dir" in warning


def test_launch_warns_before_submitting(tiny_study, in_tmp):
    result = ok("launch", "slurm", str(tiny_study), "--workers", "2", "--db", PG_URL,
                "--save-dir", "/tmp/ablate-local-runs", "--dry-run")
    if local_path_warning(Path("/tmp")) is not None:  # /tmp is local on every test machine
        assert "Warning: checkpoint folder /tmp/ablate-local-runs is on a local" in result.stderr
    assert "#SBATCH --array=0-1%2" in result.stdout


def test_a_preempted_task_is_requeued_with_its_job():
    worker = StudyWorker({"db": "x.db", "specs": []}, "/tmp/f")
    delayed = worker.checkpoint()
    assert isinstance(delayed, submitit.helpers.DelayedSubmission)
    assert delayed.function is worker and delayed.args == () and delayed.kwargs == {}


def test_exit_during_a_run_hands_it_on(tiny_study, in_tmp):
    """submitit exits the process (SystemExit) after requeueing a preempted task: the run is
    recorded as interrupted, and the next claim resumes it from its checkpoint."""
    from ablate.db import RunStore

    study = load_study(tiny_study)
    spec, = plan(study, ["A"], [0], {"epochs": 2}, Path("runs"))

    class Preempted(Hooks):
        def on_epoch(self, epoch, row):
            raise SystemExit(-1)

    with RunStore("runs.db") as store:
        with pytest.raises(SystemExit):
            execute(store, spec, Preempted())
        first, = store.list_runs()
        assert first.status == "failed" and first.error.startswith("interrupted")
        again = execute(store, spec)
        assert (again.action, again.run_id, again.status) == ("resume", first.id, "done")


@pytest.mark.slow
def test_workers_through_submitits_local_executor(tiny_study, in_tmp, monkeypatch):
    for name, value in cli_env().items():
        monkeypatch.setenv(name, value)
    result = ok("launch", "slurm", str(tiny_study), "--workers", "2", "--cluster", "local",
                "--gpus-per-worker", "0", "--db", "runs.db", "--time", "10")
    ids = re.search(r"submitted 2 worker\(s\) of tiny: (\S+), (\S+);", result.stdout).groups()
    rows = runs_json("runs.db")
    assert sorted(r["variant"] for r in rows) == sorted(VARIANTS)
    assert all(r["status"] == "done" for r in rows)
    workers = {r["worker"] for r in rows}
    assert 1 <= len(workers) <= 2 and os.getpid() not in {r["pid"] for r in rows}
    status = ok("launch", "status", "--db", "runs.db")
    for job_id in ids:
        assert re.search(rf"{job_id}\s.*ENDED", status.stdout), status.stdout
    for worker in workers:  # every worker that trained ran in one of the launched tasks
        assert worker in status.stdout


def test_status_without_launches_is_one_error_line(in_tmp):
    from ablate.db import RunStore

    RunStore("runs.db").close()
    result = invoke("launch", "status", "--db", "runs.db", "--folder", "nowhere")
    assert result.exit_code == 1
    assert result.output.strip() == ("Error: no launches recorded in nowhere: `ablate launch "
                                     "slurm` writes nowhere/launches.jsonl; pass the --folder "
                                     "it was given")


def _slurm_up() -> bool:
    if shutil.which("sbatch") is None or shutil.which("sinfo") is None:
        return False
    try:
        done = subprocess.run(["sinfo", "-h", "-N", "-o", "%T"], capture_output=True,
                              text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return False
    # A node that takes jobs; "down" or "unk" would leave the test's array pending forever.
    states = done.stdout.split()
    return done.returncode == 0 and any(s in ("idle", "mixed", "allocated") for s in states)


@pytest.mark.slow
@pytest.mark.skipif(not _slurm_up(), reason="no Slurm cluster answers sbatch/sinfo here")
def test_launch_on_a_real_slurm(tiny_study, in_tmp, monkeypatch):
    """A single-node Slurm (.ci/run starts one when it can): the array really runs; with
    PostgreSQL (ABLATE_TEST_PG_URL) two tasks share the study, else one on SQLite."""
    for name, value in cli_env().items():
        monkeypatch.setenv(name, value)
    pg = os.environ.get("ABLATE_TEST_PG_URL")
    workers, db = ("2", pg) if pg else ("1", str(in_tmp / "runs.db"))
    if pg:
        _empty_pg(pg)
    result = ok("launch", "slurm", str(tiny_study), "--workers", workers, "--db", db,
                "--gpus-per-worker", "0", "--time", "10", "--variants", "A,B,C")
    assert f"submitted {workers} worker(s) of tiny" in result.stdout
    done = wait_for(lambda: _all_done(db, 3), "the Slurm tasks to train A, B and C", 300)
    assert done
    status = ok("launch", "status", "--db", db).stdout
    assert all(r["worker"] in status for r in runs_json(db))


def _all_done(db: str, n: int) -> bool:
    rows = rows_of(Path(db)) if "://" not in db else runs_json(db)
    return len(rows) == n and all(r["status"] == "done" for r in rows)


def _empty_pg(url: str) -> None:
    """Start from an empty runs database on the shared test server."""
    from ablate.db import RunStore
    from ablate.db.models import Base

    with RunStore(url) as store:  # creates the tables when they are not there yet
        with store.engine.begin() as con:
            for table in reversed(Base.metadata.sorted_tables):
                if table.name != "ablate_meta":  # the schema version stays
                    con.execute(table.delete())


@pytest.mark.slow
def test_tuning_workers_stop_at_the_global_cap(tiny_study, in_tmp, monkeypatch):
    """--tune: every task may run all the trials, the study's cap stops them (a requeued task
    does not add trials); at most one trial per other worker is in flight at the cap."""
    import optuna

    for name, value in cli_env().items():
        monkeypatch.setenv(name, value)
    ok("launch", "slurm", str(tiny_study), "--tune", "--workers", "2", "--n-trials", "3",
       "--cluster", "local", "--gpus-per-worker", "0", "--db", "runs.db", "--time", "10")
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(in_tmp / "runs.optuna.journal")))
    trials = optuna.load_study(study_name="tiny-G-tune", storage=storage).get_trials()
    finished = [t for t in trials if t.state.is_finished()]
    assert 3 <= len(finished) <= 4 and len(finished) == len(trials)
    rows = [r for r in runs_json("runs.db") if r["variant"] == "G-tune"]
    assert len(rows) == len(trials) and len({r["worker"] for r in rows}) <= 2
