"""``ablate launch slurm --dry-run``: the batch script and what its job array will train, on
any machine: no Slurm command runs, nothing is downloaded (pretrained weights are not
fetched or looked for), and no database or launch folder is opened or made."""

from __future__ import annotations

from typing import Any

from ablate.launch.slurm import LaunchRequest, batch_script
from ablate.study.plan import choose_save_dir, run_names
from ablate.study.study import Study


def dry_run_text(request: LaunchRequest, study: Study, variants: list[str], seeds: list[int],
                 extra: dict[str, Any]) -> str:
    """The script, then the array as comment lines: the tasks, and the runs (or the trials)
    they will claim from the runs database. Every config is built and checked as for a real
    launch; only what needs the cluster's machines (the device, the weight files) is not."""
    tasks = (f"# Job array: {request.workers} task(s) of {request.gpus_per_worker} GPU(s); "
             "each claims work from the runs database until none is left.")
    return f"{batch_script(request)}{tasks}\n{_work(request, study, variants, seeds, extra)}"


def _work(request: LaunchRequest, study: Study, variants: list[str], seeds: list[int],
          extra: dict[str, Any]) -> str:
    if request.tune:
        from ablate.tune.space import check_configs, parse_tune

        spec = parse_tune(study)
        check_configs(study, spec, extra)
        trials = request.n_trials or spec.n_trials
        return f"# Tuning: {trials} trial(s) of variant {spec.variant} in all.\n"
    lines = []
    for seed in seeds:
        for condition in study.select_conditions(None):
            for variant in variants:
                config = study.config(variant, seed, extra, condition)
                names = run_names(study.name, variant, seed, config.config_hash(), condition)
                folder = choose_save_dir(request.save_root, names)
                lines.append(f"#   {'/'.join(names[1:-1] + (variant,))} seed {seed}: "
                             f"{config.config_hash()} -> {folder}")
    return f"# Runs ({len(lines)}):\n" + "".join(f"{line}\n" for line in lines)
