"""Numbers and user text as each output format writes them.

Templates get raw values and format them with these filters. In LaTeX and Markdown every
value a template prints is escaped unless a filter marked it ``Safe`` (its own markup around
numbers), so a variant called ``50%_&$#{}`` or ``<script>`` prints as text, never as markup.
HTML escaping is Jinja's own autoescape.
"""

from __future__ import annotations

import math
import re
from typing import Any

LATEX_SPECIAL = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
    "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
    "<": r"\textless{}", ">": r"\textgreater{}", "|": r"\textbar{}",
}
_LATEX_RE = re.compile("|".join(re.escape(c) for c in LATEX_SPECIAL))
# Characters with a meaning in (GitHub) Markdown tables and inline markup.
_MD_RE = re.compile(r"([\\`*_\[\]<>|#])")


class Safe(str):
    """Text already in the target format; the template's finalize prints it unchanged."""


def latex_escape(text: Any) -> str:
    return _LATEX_RE.sub(lambda m: LATEX_SPECIAL[m.group()], str(text))


def markdown_escape(text: Any) -> str:
    return _MD_RE.sub(r"\\\1", str(text)).replace("\n", " ")


def missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def num(value: Any) -> str:
    return "-" if missing(value) else f"{value:.2f}"


def value_text(value: Any) -> str:
    """A parameter or objective value: numbers to 4 significant digits, lists item by item."""
    if isinstance(value, list | tuple):
        return ", ".join(value_text(v) for v in value)
    if isinstance(value, float):
        return "-" if math.isnan(value) else f"{value:.4g}"
    return "-" if value is None else str(value)


def signed(value: Any) -> str:
    return "" if missing(value) else f"{value:+.2f}"


def pm(value: Any) -> str:
    return "" if missing(value) else f" ± {value:.2f}"


def pvalue(value: Any) -> str:
    if missing(value):
        return ""
    return "p<0.001" if value < 0.001 else f"p={value:.3f}"


def test_text(test: Any) -> str:
    """A stats.PairedTest as "-1.23 [-2.10, -0.40] p=0.003; MDE 1.85", or the reason there
    is none."""
    if test is None or isinstance(test, str):
        return test or ""
    return (f"{test.mean_diff:+.2f} [{test.ci_low:+.2f}, {test.ci_high:+.2f}] "
            f"{pvalue(test.p_value)}{'; ' if mde_text(test) else ''}{mde_text(test)}")


def mde_text(test: Any) -> str:
    """The minimum detectable effect of a PairedTest as "MDE 1.85" (nothing if unknown)."""
    value = getattr(test, "mde", None)
    if missing(value):
        return ""
    return "MDE ∞" if math.isinf(value) else f"MDE {value:.2f}"


def _number(value: float, tex: bool, sign: str = "+") -> str:
    text = f"{value:{sign}.2f}"
    return f"${text}$" if tex else text


def interval(test: Any, tex: bool = False) -> str:
    """A test's mean difference and 95% CI, "-1.23 [-2.10, -0.40]"; the mean alone where
    there is no CI (a recipe-level test on fewer than 3 seeds)."""
    if missing(test.ci_low):
        return _number(test.mean_diff, tex)
    return (f"{_number(test.mean_diff, tex)} [{_number(test.ci_low, tex)}, "
            f"{_number(test.ci_high, tex)}]")


def p_only(value: Any, tex: bool = False) -> str:
    """A p-value without its name: "0.012", "<0.001"; nothing when unknown."""
    if missing(value):
        return ""
    text = "<0.001" if value < 0.001 else f"{value:.3f}"
    return f"${text}$" if tex else text


def mde_only(value: Any, tex: bool = False) -> str:
    if missing(value):
        return ""
    if math.isinf(value):
        return r"$\infty$" if tex else "∞"
    return _number(value, tex, sign="")


def _why(reason: str, tex: bool) -> str:
    return latex_escape(reason) if tex else reason


def recipe_text(comparison: Any, tex: bool = False) -> str:
    """The recipe-level test of a Comparison in one cell, for the main table:
    "-1.23 [-2.10, -0.40] p=0.010, adj. 0.040; MDE 1.85", or why there is no claim."""
    if comparison is None or isinstance(comparison, str):
        return _why(comparison or "", tex)
    test = comparison.recipe
    if isinstance(test, str):
        return _why(test, tex)
    if not test.claim:
        return f"{_number(test.mean_diff, tex)}; {_why(test.note, tex)}"
    mde = f"; MDE {mde_only(test.mde, tex)}" if not missing(test.mde) else ""
    p = pvalue(test.p_value)
    return (f"{interval(test, tex)} {f'${p}$' if tex else p}, adj. "
            f"{p_only(test.p_adjusted, tex)}{mde}")


def recipe_cells(comparison: Any, tex: bool = False) -> list[str]:
    """The recipe-level columns of the tests table: mean [CI], p, adjusted p, MDE, the seeds
    that would find the stated effect (">1000" beyond the search; "" when unknown)."""
    test = comparison.recipe
    if isinstance(test, str):
        return [_why(test, tex), "", "", "", ""]
    # Unknown without an effect or a seed spread (one seed); None beyond the search otherwise.
    needed = "" if missing(test.effect) or missing(test.sd) else (
        str(test.seeds_needed) if test.seeds_needed is not None else ">1000")
    if not test.claim:
        seeds = "no seed spread" if test.no_spread else (
            f"{test.n_seeds} seed{'' if test.n_seeds == 1 else 's'}")
        return [_number(test.mean_diff, tex), f"no claim ({seeds})", "",
                mde_only(test.mde, tex), needed]
    return [interval(test, tex), p_only(test.p_value, tex), p_only(test.p_adjusted, tex),
            mde_only(test.mde, tex), needed]


def image_cells(comparison: Any, tex: bool = False) -> list[str]:
    """The image-level columns of the tests table: mean [CI], Wilcoxon p, MDE."""
    test = comparison.image
    if isinstance(test, str):
        return [_why(test, tex), "", ""]
    return [interval(test, tex), p_only(test.p_value, tex), mde_only(test.mde, tex)]


def models_text(comparison: Any, tex: bool = False) -> str:
    """The image-level test's p in a few words, beside a recipe-level cell: "models p<0.001"."""
    test = getattr(comparison, "image", None)
    if test is None or isinstance(test, str):
        return ""
    p = pvalue(test.p_value)
    return f"models {f'${p}$' if tex else p}"


def percent(value: Any) -> str:
    """A share as a whole percent ("62%"); nothing when unknown."""
    return "" if missing(value) else f"{100 * value:.0f}%"


def switch_text(on: bool, detail: str) -> str:
    return ("✓ " + detail if detail else "✓") if on else detail


class Latex:
    """The LaTeX filters: minus signs in math mode, the check mark as ``$\\surd$`` so the table
    needs no package beyond booktabs."""

    @staticmethod
    def num(value: Any) -> Safe:
        return Safe("--" if missing(value) else f"{value:.2f}")

    @staticmethod
    def signed(value: Any) -> Safe:
        return Safe("" if missing(value) else f"${value:+.2f}$")

    @staticmethod
    def pm(value: Any) -> Safe:
        return Safe("" if missing(value) else rf"{{\scriptsize${{\pm}}${value:.2f}}}")

    @staticmethod
    def test(test: Any) -> Safe:
        if test is None or isinstance(test, str):
            return Safe(latex_escape(test or ""))
        p = "$p<0.001$" if test.p_value < 0.001 else f"$p={test.p_value:.3f}$"
        detect = "" if missing(test.mde) else (
            r"; MDE $\infty$" if math.isinf(test.mde) else f"; MDE ${test.mde:.2f}$")
        return Safe(f"${test.mean_diff:+.2f}$ [${test.ci_low:+.2f}$, ${test.ci_high:+.2f}$] "
                    f"{p}{detect}")

    @staticmethod
    def percent(value: Any) -> Safe:
        return Safe(percent(value).replace("%", r"\%"))

    @staticmethod
    def stars(comparison: Any) -> Safe:
        """The recipe-level mean difference with stars of its adjusted p-value: short
        enough for the main table; "--" where there is no recipe-level test."""
        if comparison is None or isinstance(comparison, str):
            return Safe("--" if comparison else "")
        test = comparison.recipe
        if isinstance(test, str):
            return Safe("--")
        if not test.claim:  # fewer than 3 seeds: the difference, with no claim about it
            return Safe(f"${test.mean_diff:+.2f}$")
        stars = next((s for p, s in ((0.001, "***"), (0.01, "**"), (0.05, "*"))
                      if test.p_adjusted < p), "")
        return Safe(f"${test.mean_diff:+.2f}^{{{stars}}}$" if stars else
                    f"${test.mean_diff:+.2f}$")

    @staticmethod
    def switch(on: bool, detail: str) -> Safe:
        """The check mark alone (details such as flow@1 would widen the table); a choice such
        as the fusion is printed as its value."""
        return Safe(r"$\surd$" if on else latex_escape(detail))
