"""The project's own limits on its code: no function over 60 lines or 8 parameters, outside
the signatures of Typer commands (one parameter per command-line option, by design)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAX_LINES, MAX_PARAMS = 60, 8


def _functions():
    for package in ("model", "ablate", "benchmarks"):
        for path in sorted((ROOT / package).rglob("*.py")):
            tree = ast.parse(path.read_text(), filename=str(path))
            yield from over_limits(tree, path.relative_to(ROOT))


def over_limits(tree: ast.Module, path: Path):
    """One line per function of ``tree`` over the limits."""
    for node in ast.walk(tree):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        command = _is_typer_command(node)
        start = node.body[0].lineno if command else node.lineno  # a command: its body only
        lines = node.end_lineno - start + 1
        if lines > MAX_LINES:
            yield f"{path}:{node.lineno} {node.name}: {lines} lines"
        if _params(node) > MAX_PARAMS and not command:
            yield f"{path}:{node.lineno} {node.name}: {_params(node)} parameters"


def _is_typer_command(node: ast.FunctionDef) -> bool:
    """A command's parameters are its options: annotated with typer's (or ablate's aliases
    of them in ablate.cli.options, ``opt.*``)."""
    text = " ".join(ast.unparse(a.annotation) for a in node.args.args + node.args.kwonlyargs
                    if a.annotation is not None)
    return "typer." in text or "opt." in text


def _params(node: ast.FunctionDef) -> int:
    args = node.args
    named = [a.arg for a in args.posonlyargs + args.args + args.kwonlyargs]
    return len([a for a in named if a not in ("self", "cls")])


def test_the_check_finds_a_long_function_and_a_long_signature():
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_LINES))
    source = (f"def long():\n{body}\n\ndef wide(a, b, c, d, e, f, g, h, i):\n    pass\n"
              f"\ndef fine(self, a, b, c, d, e, f, g, h):\n    pass\n")
    found = list(over_limits(ast.parse(source), Path("x.py")))
    assert found == [f"x.py:1 long: {MAX_LINES + 1} lines", "x.py:63 wide: 9 parameters"]


def test_no_function_is_over_the_limits():
    over = list(_functions())
    assert not over, "over the limits:\n" + "\n".join(over)
