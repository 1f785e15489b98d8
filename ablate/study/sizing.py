"""``ablate study run --seeds auto --target-mde X``: the study sizes itself. It trains 3 seeds,
reads the recipe-level tests of its comparisons (``ablate.report``: every variant against its
parent and against the first variant, in every condition, at ``METRIC``), and while the
largest seed-level minimum detectable effect (MDE) is above X it adds seeds, in rounds, up to
``--max-seeds``. Each round goes to the seed count at which the worst comparison's observed
seed spread would bring its MDE to X (at least one more seed), so the spread is re-estimated
from every round's seeds before the next."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from ablate.errors import UsageError

AUTO = "auto"
START_SEEDS = 3  # the fewest with which a recipe-level test says anything
DEFAULT_MAX_SEEDS = 10
METRIC = "game3"  # the report's headline GAME level


@dataclass(frozen=True)
class Sizing:
    target_mde: float
    max_seeds: int = DEFAULT_MAX_SEEDS


def parse_seeds(text: str | None) -> int | str | None:
    """``--seeds``: a count, ``auto``, or None (not given)."""
    if text is None or text == AUTO:
        return text
    try:
        return int(text)
    except ValueError:
        raise UsageError(f"--seeds {text!r} is not valid; give a count (--seeds 3) or auto "
                         "with a target (--seeds auto --target-mde 0.5)") from None


def check_sizing(seeds: int | str | None, target_mde: float | None, max_seeds: int,
                 force: bool) -> Sizing | None:
    """The Sizing of ``--seeds auto``, None for a fixed seed list; bad combinations are
    a one-line error."""
    if seeds != AUTO:
        if target_mde is not None:
            raise UsageError("--target-mde needs --seeds auto, e.g. --seeds auto "
                             f"--target-mde {target_mde:g}")
        return None
    if target_mde is None or not target_mde > 0 or not math.isfinite(target_mde):
        raise UsageError(f"--seeds auto needs --target-mde X > 0 (the {METRIC.upper()} "
                         f"difference to detect), e.g. --seeds auto --target-mde 0.5; "
                         f"got {target_mde}")
    if max_seeds < START_SEEDS:
        raise UsageError(f"--max-seeds {max_seeds} is not valid; it must be >= {START_SEEDS}")
    if force:
        raise UsageError("--force retrains every round of --seeds auto; run the first round "
                         f"with --seeds {START_SEEDS} --force, then --seeds auto")
    return Sizing(target_mde, max_seeds)


def size_study(name: str, train: Callable[[list[int]], None], sizing: Sizing,
               db: str | None, echo: Callable[[str], None]) -> int:
    """Train seeds 0..n-1 in rounds until every comparison's MDE is <= the target or n
    reaches the cap; returns n."""
    n = START_SEEDS
    while True:
        train(list(range(n)))
        worst, wanted = study_mde(name, db, sizing.target_mde)
        echo(f"seeds 0-{n - 1}: largest seed-level {METRIC.upper()} MDE {worst:.3g} "
             f"(target {sizing.target_mde:g})")
        if worst <= sizing.target_mde:
            echo(f"target reached with {n} seeds")
            return n
        if n >= sizing.max_seeds:
            echo(f"stopped at --max-seeds {sizing.max_seeds}: the MDE is still above the "
                 f"target; {_more(wanted)}")
            return n
        n = min(sizing.max_seeds, max(n + 1, wanted or sizing.max_seeds))


def _more(wanted: int | None) -> str:
    if wanted is None:
        return "more than 1000 seeds would be needed at this seed spread"
    return f"about {wanted} seeds would reach it (raise --max-seeds)"


def study_mde(name: str, db: str | None, target: float) -> tuple[float, int | None]:
    """The largest seed-level MDE at METRIC over the study's comparisons, and the seeds at
    which the worst of them would reach ``target`` (None: beyond the search)."""
    # The report's imports (pandas, scipy, SQLAlchemy) only when a study sizes itself.
    from ablate.db import RunStore
    from ablate.report import build_report
    from ablate.report.recipe import MIN_SEEDS, RecipeTest, seeds_needed

    with RunStore(db, readonly=True) as store:
        report = build_report(store, name)
    tests = [part.test(key, against, METRIC)
             for _, part in (report.parts or [("", report)])
             for key, against in part.significance[["row", "against"]].itertuples(index=False)]
    # Only comparisons these rounds add seeds to: a tuned row holds one run (its best trial),
    # so its MDE stays unknown whatever the round, and would stall the sizing at the cap.
    found = [t.recipe for t in tests if t and isinstance(t.recipe, RecipeTest)
             and t.recipe.n_seeds >= MIN_SEEDS]
    if not found:
        raise UsageError(f"study {name!r} has no comparison with per-image test results of "
                         f"{MIN_SEEDS} seeds to size on; --seeds auto needs at least two "
                         "variants")
    worst = max(found, key=lambda test: (math.isnan(test.mde), test.mde))
    needed = [seeds_needed(test.sd, target, test.method) for test in found]
    return worst.mde, None if None in needed else max(needed)
