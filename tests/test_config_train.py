"""Training config files checked by their settings class: one line naming the file, the table and the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from rifestream.errors import RifestreamError
from rifestream.train.config import TrainConfig, load_config, replaced

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[train]\nsteps = 0\n", "cfg.toml: train.steps: expected a whole number ≥ 1, got 0"),
        ('[train]\nsteps = "5"\n', 'cfg.toml: train.steps: expected a whole number ≥ 1, got "5"'),
        ("[train]\nlr = -1.0\n", "cfg.toml: train.lr: expected a positive number, got -1.0"),
        ("[data]\nsynthetic_share = 1.5\n", "cfg.toml: data.synthetic_share: expected a number from 0 to 1, got 1.5"),
        ('[data]\ngaps = [1, "x"]\n', 'cfg.toml: data.gaps[1]: expected a whole number, got "x"'),
        ("[model]\nchannels = 3\n", "cfg.toml: model.channels: expected a list, got 3"),
        ("[model]\nhead = 1\n", "cfg.toml: model.head: expected true or false, got 1"),
        ("[train]\nspeed = 1\n", "cfg.toml: train.speed: unknown key; expected one of name, channels,"),
    ],
)
def test_a_bad_training_file_is_one_line_naming_table_and_key(tmp_path, text, message):
    (tmp_path / "cfg.toml").write_text(text)
    with pytest.raises(RifestreamError) as err:
        load_config(tmp_path / "cfg.toml")
    assert str(err.value).replace(f"{tmp_path}/", "").startswith(message), str(err.value)


def test_lists_become_tuples_and_the_defaults_fill_the_rest(tmp_path):
    (tmp_path / "cfg.toml").write_text("[model]\nchannels = [64, 32]\nscales = [2, 1]\n[data]\ngaps = [1]\n")
    cfg = load_config(tmp_path / "cfg.toml")
    assert cfg.channels == (64, 32) and cfg.scales == (2.0, 1.0) and cfg.gaps == (1,)
    assert cfg.flow_blocks == (1,)  # every block but the coarsest
    assert cfg.steps == TrainConfig().steps


def test_flag_changes_pass_the_same_checks_as_the_file():
    cfg = replaced(TrainConfig(), {"steps": 20, "crop": 96})
    assert (cfg.steps, cfg.crop) == (20, 96)
    with pytest.raises(RifestreamError, match=r"^command line: batch: expected a whole number ≥ 1, got 0$"):
        replaced(cfg, {"batch": 0})


def test_the_cpu_models_recipe_is_checked_the_same_way(tmp_path):
    from rifestream.train.lite import LiteTrainConfig

    text = (REPO / "configs" / "train" / "lite.toml").read_text().replace("crop = 256", 'crop = "big"')
    (tmp_path / "lite.toml").write_text(text)
    with pytest.raises(RifestreamError) as err:
        LiteTrainConfig.load(tmp_path / "lite.toml")
    assert str(err.value) == f'{tmp_path}/lite.toml: data.crop: expected a whole number, got "big"'


@pytest.mark.parametrize(
    ("setting", "changed", "message"),
    [
        (
            'warp_mode = "measured"',
            'warp_mode = "cubic"',
            "warp_mode must be one of bilinear, bicubic, measured, got 'cubic'",
        ),
        (
            "shared_motion = true",
            "shared_motion = false",
            "motion_search chooses among shared motions; set shared_motion = true too",
        ),
    ],
)
def test_the_cpu_models_recipe_names_a_bad_model_setting_in_one_line(tmp_path, setting, changed, message):
    from rifestream.train.lite import LiteTrainConfig

    text = (REPO / "configs" / "train" / "lite.toml").read_text()
    assert setting in text
    (tmp_path / "lite.toml").write_text(text.replace(setting, changed))
    with pytest.raises(RifestreamError) as err:
        LiteTrainConfig.load(tmp_path / "lite.toml")
    assert str(err.value) == f"{tmp_path}/lite.toml: [model] settings: rifestream-lite: {message}"
