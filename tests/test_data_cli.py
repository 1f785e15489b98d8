"""``ablate data check`` and ``ablate data synth`` through the real CLI."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from ablate.cli.app import app

SMALL = ["--n", "4", "--height", "48", "--width", "64", "--max-people", "8"]


def _invoke(*args: str):
    return CliRunner().invoke(app, ["data", *args])


@pytest.fixture()
def synth_dir(tmp_path):
    out = tmp_path / "synth"
    result = _invoke("synth", str(out), *SMALL, "--shift", "4", "--seed", "3")
    assert result.exit_code == 0, result.output
    return out


def test_synth_writes_the_rgbtcc_layout_and_says_what_it_wrote(synth_dir):
    assert sorted(p.name for p in synth_dir.iterdir()) == ["test", "train", "val"]
    assert len(list((synth_dir / "train").glob("*_RGB.jpg"))) == 4
    assert len(list((synth_dir / "val").glob("*_GT.json"))) == 1
    label = json.loads((synth_dir / "train" / "0_GT.json").read_text())
    assert abs(label["synthetic"]["shift"][0]) <= 4


def test_synth_output_lines(tmp_path):
    result = _invoke("synth", str(tmp_path / "s"), *SMALL)
    lines = result.output.strip().splitlines()
    assert lines[0].startswith(f"{tmp_path / 's' / 'train'}: 4 pairs, ")
    assert lines[-1] == f"wrote 6 pairs (64x48) in the RGBT-CC layout to {tmp_path / 's'}"


def test_check_json_is_one_object_with_the_documented_keys(synth_dir):
    result = _invoke("check", str(synth_dir), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["format"] == "rgbtcc" and report["problems"] == []
    assert set(report["splits"]) == {"train", "val", "test"}
    train = report["splits"]["train"]
    assert train["pairs"] == 4 and train["image_sizes"] == {"64x48": 4}
    assert {"points", "mean_points", "points_outside"} <= set(train)


def test_check_table_and_problems_exit_one(synth_dir):
    result = _invoke("check", str(synth_dir))
    assert result.exit_code == 0 and "no problems found" in result.output
    assert "train" in result.output and "64x48 (4)" in result.output
    (synth_dir / "train" / "1_T.jpg").unlink()
    (synth_dir / "val" / "0_GT.json").write_text("not json")
    result = _invoke("check", str(synth_dir))
    assert result.exit_code == 1
    assert "2 problem(s)" in result.output and "1_RGB.jpg" in result.output
    as_json = _invoke("check", str(synth_dir), "--json")
    assert as_json.exit_code == 1 and len(json.loads(as_json.output)["problems"]) == 2


def test_synth_refuses_to_overwrite_without_the_flag(synth_dir):
    assert _invoke("synth", str(synth_dir), *SMALL).exit_code == 1
    assert _invoke("synth", str(synth_dir), *SMALL, "--overwrite").exit_code == 0


def test_every_command_has_help_ending_with_an_example():
    for command in ("check", "synth"):
        result = _invoke(command, "--help")
        assert result.exit_code == 0
        lines = [line.strip(" │") for line in result.output.splitlines() if line.strip(" │")]
        assert any(line.startswith(f"Example: ablate data {command} ") for line in lines)


@pytest.mark.parametrize(
    "args, needle",
    [
        (["check", "{tmp}/missing"], "{tmp}/missing does not exist"),
        (["check", "{tmp}"], "expected RGBT-CC"),
        (["synth", "{tmp}/s", "--min-people", "9", "--max-people", "2"], "--min-people=9"),
        # Issue 15: the option is named, not the config field or Python's conversion error.
        (["synth", "{tmp}/s", "--shift", "nan"], "--shift nan is not valid"),
        (["synth", "{tmp}/s", "--rotation", "inf"], "--rotation inf is not valid"),
        (["synth", "{tmp}/s", "--night", "2"], "--night"),
        (["synth", "{tmp}/s", "--n", "0"], "--n"),
    ],
)
def test_bad_input_is_one_line_error_with_exit_one(tmp_path, args, needle):
    (tmp_path / "junk.txt").write_text("x")
    result = _invoke(*[a.format(tmp=tmp_path) for a in args])
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert (
        len(lines) == 1
        and lines[0].startswith("Error: ")
        and needle.format(tmp=tmp_path) in lines[0]
    )
