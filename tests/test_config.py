"""The pipeline config: one-line errors naming the key, layering (default < preset < file < flags)."""

from __future__ import annotations

import argparse
from fractions import Fraction
from pathlib import Path

import pytest

from rifestream.cli import run as run_cli
from rifestream.config import check_layer, load_config, read_toml
from rifestream.errors import RifestreamError

REPO = Path(__file__).resolve().parents[1]


def write(folder: Path, text: str, name: str = "pipeline.toml") -> Path:
    path = folder / name
    path.write_text(text)
    return path


@pytest.fixture(autouse=True)
def in_tmp(tmp_path, monkeypatch):
    """Run in the test's folder, so a pipeline is named as a user types it (pipeline.toml)."""
    monkeypatch.chdir(tmp_path)


def flags(*argv: str) -> dict:
    parser = argparse.ArgumentParser()
    run_cli.add_parser(parser.add_subparsers())
    return run_cli.overrides_from_args(parser.parse_args(["run", *argv]))


def test_default_job_is_the_test_scene_at_30_to_60_into_a_file_for_a_fixed_time():
    config = load_config()
    assert config.source_url.startswith("testsrc:")
    assert "fps=30" in config.source_url
    assert config.factor == 2 and config.fps is None
    assert [s.url for s in config.sinks] == ["rifestream-default.mp4"]
    assert config.duration == 10
    assert config.metrics_enabled and config.metrics_port == 9108
    assert config.model is None  # the shipped default model


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '[latency]\nbudget_ms = "fast"\n',
            'pipeline.toml: latency.budget_ms: expected a positive number, got "fast"',
        ),
        ("[latency]\nbudget = 20\n", "pipeline.toml: latency.budget: unknown key; expected one of budget_ms,"),
        ("[engine]\nscale = 8\n", "pipeline.toml: engine.scale: expected a number from 0.25 to 4, got 8"),
        ("[engine]\nprecision = 16\n", 'pipeline.toml: engine.precision: expected one of "fp32", "fp16", got 16'),
        ("[rate]\nfactor = 1.5\n", "pipeline.toml: rate.factor: expected a whole number ≥ 1, got 1.5"),
        ("[rate]\nfactor = 2\nfps = 60\n", "pipeline.toml: rate: expected either factor or fps, got both"),
        ('[rate]\nfps = "fast"\n', "pipeline.toml: rate.fps: expected a positive frame rate"),
        (
            "[metrics]\nport = 70000\n",
            "pipeline.toml: metrics.port: expected a whole number from 0 to 65535, got 70000",
        ),
        ("[source]\nrealtime = 1\n", "pipeline.toml: source.realtime: expected true or false, got 1"),
        ("[[sinks]]\ncrf = 20\n", "pipeline.toml: sinks[0].url: expected a sink URL"),
        ('[[sinks]]\nurl = "a.mp4"\nbitrate = "lots"\n', "pipeline.toml: sinks[0].bitrate: expected a bit rate"),
        ('sinks = ["a.mp4", 3]\n', "pipeline.toml: sinks[1]: expected a table, got 3"),
        ('[latency]\nforce_step = "fastest"\n', 'pipeline.toml: latency.force_step: expected one of "model",'),
        ("duration = -1\n", "pipeline.toml: duration: expected a positive number of seconds"),
        ("source = 3\n", "pipeline.toml: source: expected a table, got 3"),
        ('colour = "red"\n', "pipeline.toml: colour: unknown key; expected one of preset, duration, source,"),
        ('preset = "turbo"\n', "pipeline.toml: preset: expected one of low-latency, balanced, quality"),
    ],
)
def test_a_bad_file_fails_with_one_line_naming_the_key_what_was_given_and_expected(tmp_path, text, message):
    write(tmp_path, text)
    with pytest.raises(RifestreamError) as err:
        load_config("pipeline.toml")
    text = str(err.value)
    assert "\n" not in text
    assert text.startswith(message), text


def test_not_toml_and_missing_files_are_one_line_errors(tmp_path):
    with pytest.raises(RifestreamError, match=r"^pipeline.toml: not valid TOML"):
        write(tmp_path, "[latency\n")
        load_config("pipeline.toml")
    with pytest.raises(RifestreamError, match="no such file"):
        load_config(tmp_path / "absent.toml")


def test_bad_flags_are_named_as_flags_in_the_schema():
    with pytest.raises(RifestreamError, match=r"^command line: latency.budget_ms: expected a positive number, got -5"):
        load_config(None, flags("--budget-ms", "-5"))
    with pytest.raises(RifestreamError, match=r"^command line: engine.scale: expected a number from 0.25 to 4"):
        load_config(None, flags("--scale", "9"))


def test_flags_override_the_file_and_the_file_overrides_the_default(tmp_path):
    path = write(
        tmp_path,
        '[source]\nurl = "rtsp://cam/1"\n[[sinks]]\nurl = "rtmp://host/live/a"\n'
        "[latency]\nbudget_ms = 30\nsink_queue = 5\n[rate]\nfps = 50\n",
    )
    config = load_config(path)
    assert config.source_url == "rtsp://cam/1"
    assert config.budget_ms == 30 and config.sink_queue == 5
    assert config.fps == 50 and config.factor is None
    assert config.source_queue == 2  # from the default
    assert config.duration is None  # the default's 10 s belong to its test scene, not to a camera

    config = load_config(
        path,
        flags("--sink", "out.mkv", "--sink", "zmq://127.0.0.1:5555", "--factor", "3", "--budget-ms", "40",
              "--duration", "2.5", "--force-step", "blend", "--metrics-port", "0", "--fp16", "--device", "cuda"),
    )  # fmt: skip
    assert [s.url for s in config.sinks] == ["out.mkv", "zmq://127.0.0.1:5555"]
    assert config.factor == 3 and config.fps is None  # the rate table is replaced whole
    assert config.budget_ms == 40 and config.sink_queue == 5
    assert config.duration == 2.5 and config.force_step == "blend"
    assert config.metrics_port == 0 and config.precision == "fp16" and config.device == "cuda"


def test_fps_flag_takes_fractions_and_the_model_path_is_relative_to_the_file(tmp_path):
    path = write(tmp_path, '[model]\npath = "weights/flownet.pkl"\n')
    config = load_config(path, flags("--fps", "60000/1001"))
    assert config.fps == Fraction(60000, 1001)
    assert config.model == str(tmp_path / "weights" / "flownet.pkl")
    assert load_config(path, flags("--model", "v4.6")).model == "v4.6"


def test_presets_merge_under_the_pipelines_own_keys(tmp_path):
    (tmp_path / "configs").mkdir()
    write(tmp_path / "configs", "[latency]\nbudget_ms = 7\nsink_queue = 2\n[encoder]\ncrf = 30\n", "snappy.toml")
    path = write(
        tmp_path,
        'preset = "snappy"\n[latency]\nsink_queue = 6\n[[sinks]]\nurl = "a.mp4"\n[[sinks]]\nurl = "zmq://127.0.0.1:5"\n'
        '[[sinks]]\nurl = "b.mkv"\ncrf = 10\n',
    )
    config = load_config(path)
    assert config.budget_ms == 7  # from the preset
    assert config.sink_queue == 6  # the file's own key wins
    assert [s.crf for s in config.sinks] == [30, None, 10]  # encoder defaults skip the feed; a sink's own wins
    # a --preset flag replaces the file's preset, still under the file's own keys
    config = load_config(path, flags("--preset", "quality"))
    assert config.budget_ms == 60 and config.sink_queue == 6


def test_a_preset_may_not_set_the_jobs_ends(tmp_path):
    write(tmp_path, '[source]\nurl = "x.mp4"\n', "sneaky.toml")
    path = write(tmp_path, 'preset = "sneaky.toml"\n')
    with pytest.raises(RifestreamError, match=r"sneaky.toml: source: a preset may only set rate, model, engine"):
        load_config(path)


def test_shipped_presets_differ_in_latency():
    budgets = {name: load_config(None, {"preset": name}).budget_ms for name in ("low-latency", "balanced", "quality")}
    assert budgets["low-latency"] < budgets["balanced"] < budgets["quality"]


@pytest.mark.parametrize("path", sorted((REPO / "pipelines").glob("*.toml")), ids=lambda p: p.name)
def test_every_shipped_pipeline_validates(path):
    config = load_config(path)
    assert config.sinks and config.source_url
    assert config.duration is None  # a real pipeline runs until stopped


@pytest.mark.parametrize("path", sorted((REPO / "configs").glob("*.toml")), ids=lambda p: p.name)
def test_every_shipped_preset_validates(path):
    check_layer(read_toml(path, str(path)), str(path), preset=True)


def test_the_four_use_cases_and_three_presets_are_shipped():
    pipelines = {p.stem for p in (REPO / "pipelines").glob("*.toml")}
    assert {"camera-rtsp-to-rtmp", "game-capture-to-rtmp", "file-to-zmq", "rtsp-to-zmq"} <= pipelines
    assert {p.stem for p in (REPO / "configs").glob("*.toml")} >= {"low-latency", "balanced", "quality"}
