"""The config refuses every bad value when it is built, with one line naming the field and the
value; ``--set`` strings are parsed by the field's exact type; the hash covers what can change
a result and nothing else."""

from __future__ import annotations

import dataclasses
import math
import re

import pytest

from model.config import (
    EXECUTION_FIELDS,
    FIELD_SECTION,
    SECTIONS,
    DataConfig,
    ModelConfig,
    RunConfig,
    TrainConfig,
    select_metrics,
)
from model.config.validation import SetText, hints
from model.errors import ConfigError
from model.metrics import metric
from model.registry import unregister


def fields_of(kind: object) -> list[str]:
    return [f.name for cls in SECTIONS.values() for f in dataclasses.fields(cls)
            if hints(cls)[f.name] == kind]


FLOAT_FIELDS = fields_of(float)
INT_FIELDS = fields_of(int)
BOOL_FIELDS = fields_of(bool)


def refused(overrides: dict, pattern: str) -> str:
    """The one-line message of the ConfigError that ``overrides`` raise (strings as --set's)."""
    with pytest.raises(ConfigError) as err:
        RunConfig().with_overrides({k: SetText(v) if isinstance(v, str) else v
                                    for k, v in overrides.items()})
    message = str(err.value)
    assert "\n" not in message
    assert re.search(pattern, message), message
    return message


def test_the_field_lists_cover_every_kind():
    assert {"lr", "grl_lambda", "synth_shift", "density_sigma"} <= set(FLOAT_FIELDS)
    assert {"epochs", "crop_size", "synth_seed", "offset_stage"} <= set(INT_FIELDS)
    assert {"shared_backbone", "hflip", "compile"} <= set(BOOL_FIELDS)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, "nan", "inf", "-inf", "NaN"])
@pytest.mark.parametrize("name", FLOAT_FIELDS)
def test_nan_and_infinity_are_refused_in_every_float_field(name, value):
    shown = repr(float(value))
    refused({name: value}, rf"^{name}={re.escape(shown)} is not valid; it must be a finite number")


@pytest.mark.parametrize("name", FLOAT_FIELDS)
def test_text_and_booleans_are_refused_in_every_float_field(name):
    refused({name: "fast"}, rf"^{name}='fast' is not valid; it must be a finite number")
    refused({name: True}, rf"^{name}=True is not valid; it must be a finite number")


@pytest.mark.parametrize(("value", "shown"), [
    (1.5, "1.5"), (1e400, "inf"), ("1e400", "inf"), ("ten", "'ten'"), (True, "True"),
    ("2.5", "2.5"), (math.nan, "nan"), ([1], "[1]"),
])
@pytest.mark.parametrize("name", INT_FIELDS)
def test_non_integers_are_refused_in_every_int_field(name, value, shown):
    refused({name: value}, rf"^{name}={re.escape(shown)} is not valid; it must be an integer")


@pytest.mark.parametrize("name", BOOL_FIELDS)
def test_only_true_or_false_is_a_boolean(name):
    refused({name: "maybe"}, rf"^{name}='maybe' is not valid; it must be true or false")
    refused({name: 1}, rf"^{name}=1 is not valid; it must be true or false")


@pytest.mark.parametrize(("overrides", "message"), [
    ({"epochs": 1.5}, "epochs=1.5 is not valid; it must be an integer >= 1"),
    ({"epochs": "ten"}, "epochs='ten' is not valid; it must be an integer >= 1"),
    ({"epochs": 0}, "epochs=0 is not valid; it must be an integer >= 1"),
    ({"lr": math.nan}, "lr=nan is not valid; it must be a finite number > 0"),
    ({"lr": "inf"}, "lr=inf is not valid; it must be a finite number > 0"),
    ({"lr": 0}, "lr=0 is not valid; it must be a finite number > 0"),
    ({"weight_decay": -1.0}, "weight_decay=-1.0 is not valid; it must be a finite number >= 0"),
    ({"local_count_levels": 1}, "local_count_levels=1 is not valid; give a list such as [1, 2]"),
    ({"local_count_levels": [1, 7], "local_count_level_weights": [1.0, 1.0]},
     "local_count_levels=(1, 7) is not valid; every item must be one of 0, 1, 2, 3, 4"),
    ({"local_count_levels": [1.5]},
     "local_count_levels=[1.5] is not valid; every item must be an integer"),
    ({"local_count_level_weights": [1.0, math.nan]},
     "local_count_level_weights=[1.0, nan] is not valid; every item must be a finite number >= 0"),
    ({"local_count_levels": [1, 2, 3]},
     "local_count_level_weights=(1.0, 0.5) is not valid; give one weight per item of "
     "local_count_levels=(1, 2, 3)"),
    ({"local_count": 0.2, "local_count_levels": [], "local_count_level_weights": []},
     "local_count_levels=() is not valid; local_count=0.2 needs at least one level, e.g. [1, 2]"),
    ({"crop_size": 7}, "crop_size=7 is not valid; it must be divisible by downsample_ratio=8"),
    ({"crop_size": 8}, "crop_size=8 is not valid; it must be >= 16, the deepest stride"),
    ({"crop_size": 64, "downsample_ratio": 32}, None),
    ({"crop_size": 8192}, "crop_size=8192 is not valid; it must be an integer in [1, 4096]"),
    ({"seed": 2**32}, "seed=4294967296 is not valid; it must be an integer in [0, 4294967295]"),
    ({"synth_height": 8}, "synth_height=8 is not valid; it must be an integer in [16, 4096]"),
    ({"synth_local_warp": 1e5}, "synth_local_warp=100000.0 is not valid; it must be <= 160, "
                                "the larger side of a synthetic image"),
    ({"synth_min_people": 9, "synth_max_people": 3},
     "synth_min_people=9 is not valid; it must be <= synth_max_people=3"),
    ({"bayes_background_ratio": 1.0},
     "bayes_background_ratio=1.0 is not valid; it must be a finite number in [0, 1)"),
    ({"synth_night_fraction": 2}, "synth_night_fraction=2 is not valid; it must be a finite "
                                  "number in [0, 1]"),
    ({"fusion": "max"}, "fusion='max' is not valid; choose one of concat, sum"),
    ({"backbone": "vgg16bn"},
     "backbone='vgg16bn' is not valid; did you mean vgg16_bn\\? choose one"),
    ({"schedule": 3}, "schedule=3 is not valid; it must be a string"),
    ({"pretrained": 3}, "pretrained=3 is not valid; it must be a string"),
    ({"select_metric": "game4"}, "select_metric='game4' is not valid; did you mean game"),
])
def test_messages_name_the_field_and_the_value(overrides, message):
    if message is None:
        RunConfig().with_overrides(overrides)  # 64 is divisible by 32 and deep enough
        return
    refused(overrides, "^" + message.replace("(", r"\(").replace(")", r"\)")
            .replace("[", r"\[").replace("]", r"\]"))


def test_sections_built_directly_are_checked_too():
    with pytest.raises(ConfigError, match=r"^epochs=1.5 is not valid"):
        TrainConfig(epochs=1.5)
    with pytest.raises(ConfigError, match=r"^synth_shift=nan is not valid"):
        DataConfig(synth_shift=math.nan)
    with pytest.raises(ConfigError, match=r"^crop_size=60 is not valid"):
        RunConfig(data=DataConfig(crop_size=60))
    with pytest.raises(ConfigError, match=r"RunConfig.model must be a ModelConfig"):
        RunConfig(model={"stn": "bounded"})


def test_exact_numbers_are_normalised_to_the_field_type():
    cfg = RunConfig().with_overrides({"lr": 1, "epochs": 3.0, "local_count_levels": [0, 3]})
    assert cfg.train.lr == 1.0 and isinstance(cfg.train.lr, float)
    assert cfg.train.epochs == 3 and isinstance(cfg.train.epochs, int)
    assert cfg.loss.local_count_levels == (0, 3)
    assert cfg.config_hash() == RunConfig().with_overrides(
        {"lr": 1.0, "epochs": 3, "local_count_levels": (0, 3)}).config_hash()


@pytest.mark.parametrize(("key", "text", "value"), [
    ("stn", "bounded", "bounded"), ("hflip", "off", False), ("epochs", "12", 12), ("lr", "3", 3.0),
    ("lr", "1e-3", 1e-3), ("local_count_levels", "1,2,3", (1, 2, 3)),
    ("local_count_level_weights", "[1.0, 0.5]", (1.0, 0.5)), ("data_path", "none", None),
    ("pretrained", "null", None), ("pretrained", "/w/vgg.pth", "/w/vgg.pth"),
    ("schedule", "none", "none"),  # a str field keeps the word: "none" is a schedule
    ("aligner", "deform", "deform"), ("domain_head", "none", "none"),
])
def test_set_strings_are_parsed_by_the_exact_field_type(key, text, value):
    weights = {"local_count_level_weights": SetText("1,1,1")}
    cfg = RunConfig().with_overrides({key: SetText(text),
                                      **(weights if key == "local_count_levels" else {})})
    assert getattr(getattr(cfg, FIELD_SECTION[key]), key) == value


def test_unknown_keys_suggest_the_closest_name():
    with pytest.raises(ConfigError, match=r"unknown config key 'epoch'; did you mean epochs"):
        RunConfig().with_overrides({"epoch": 3})
    with pytest.raises(ConfigError, match=r"unknown config key 'model.lr'"):
        RunConfig().with_overrides({"model.lr": 0.1})


def test_a_metric_registered_later_is_a_valid_select_metric():
    metric("test_median_error", "MEDIAN")(lambda columns: 0.0)
    try:
        assert "test_median_error" in select_metrics()
        assert TrainConfig(select_metric="test_median_error").select_metric == "test_median_error"
    finally:
        unregister("metric", "test_median_error")
    with pytest.raises(ConfigError, match="select_metric='test_median_error' is not valid"):
        TrainConfig(select_metric="test_median_error")


def test_select_metrics_is_still_importable_as_a_name():
    from model.config import SELECT_METRICS

    assert SELECT_METRICS == select_metrics()
    assert SELECT_METRICS[-1] == "game_sum" and "rmse" in SELECT_METRICS


EXECUTION = {"device": "cpu", "num_workers": 3, "on_device": False, "compile": True,
             "channels_last": False, "eval_batch_size": 1, "checkpoint_every": 5,
             "checkpoint_minutes": 10.0, "deterministic": True}
RESULT_CHANGING = {"lr": 5e-4, "epochs": 7, "stn": "bounded", "aligner": "deform",
                   "local_count": 0.2, "crop_size": 128, "precision": "fp32", "eval_every": 2,
                   "seed": 1, "synth_shift": 4.0, "synth_n_train": 10, "data_path": "/data/x",
                   "select_metric": "game_sum", "hflip": False, "pretrained": "torchvision"}


def test_the_hash_ignores_how_a_run_is_executed():
    assert set(EXECUTION) == set(EXECUTION_FIELDS)
    base = RunConfig()
    for key, value in EXECUTION.items():
        assert base.with_overrides({key: value}).config_hash() == base.config_hash(), key
    assert base.with_overrides(EXECUTION).config_hash() == base.config_hash()


@pytest.mark.parametrize(("key", "value"), list(RESULT_CHANGING.items()))
def test_the_hash_changes_with_every_result_changing_field(key, value):
    base = RunConfig()
    assert base.with_overrides({key: value}).config_hash() != base.config_hash()


def test_synthetic_settings_count_only_for_synthetic_data():
    on_disk = RunConfig().with_overrides({"data_path": "/data/rgbtcc"})
    for key, value in (("synth_shift", 2.0), ("synth_seed", 5), ("synth_n_train", 3)):
        assert on_disk.with_overrides({key: value}).config_hash() == on_disk.config_hash(), key
    assert on_disk.with_overrides({"crop_size": 128}).config_hash() != on_disk.config_hash()


def test_to_dict_and_from_dict_round_trip_with_every_field():
    cfg = RunConfig().with_overrides({"stn": "bounded", "lr": 2e-4, "data_path": "/x",
                                      "local_count_levels": [2], "local_count_level_weights": [1]})
    again = RunConfig.from_dict(cfg.to_dict())
    assert again == cfg and again.config_hash() == cfg.config_hash()
    assert set(again.to_dict()["model"]) == {f.name for f in dataclasses.fields(ModelConfig)}
    with pytest.raises(ConfigError, match="a config must be a table"):
        RunConfig.from_dict(["not", "a", "dict"])
