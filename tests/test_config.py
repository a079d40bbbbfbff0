"""The pipeline config: one-line errors naming the key, layering (default < preset < file < flags)."""

from __future__ import annotations

import argparse
from fractions import Fraction
from pathlib import Path

import pytest

from rifestream.cli import run as run_cli
from rifestream.config import check_layer, load_config, load_fleet, read_toml
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
    assert config.source.url.startswith("testsrc:")
    assert "fps=30" in config.source.url
    assert config.rate.factor == 2 and config.rate.fps is None
    assert [s.url for s in config.sinks] == ["rifestream-default.mp4"]
    assert config.duration == 10
    assert config.metrics.enabled and config.metrics.port == 9108
    assert config.model.ref is None  # the shipped default model


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '[latency]\nbudget_ms = "fast"\n',
            'pipeline.toml: latency.budget_ms: expected a positive number, got "fast"',
        ),
        ("[latency]\nbudget = 20\n", "pipeline.toml: latency.budget: unknown key; expected one of budget_ms,"),
        (
            "[engine]\nscale = 8\n",
            "pipeline.toml: engine.scale: expected one of 0.25, 0.5, 1, 2, 4 (0.5 for 4K), got 8",
        ),
        ("[engine]\nprecision = 16\n", 'pipeline.toml: engine.precision: expected one of "fp32", "fp16", got 16'),
        ("[rate]\nfactor = 1.5\n", "pipeline.toml: rate.factor: expected a whole number from 1 to 1000, got 1.5"),
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
    with pytest.raises(RifestreamError, match=r"^command line: engine.scale: expected one of 0.25, 0.5, 1, 2, 4"):
        load_config(None, flags("--scale", "9"))


def test_flags_override_the_file_and_the_file_overrides_the_default(tmp_path):
    path = write(
        tmp_path,
        '[source]\nurl = "rtsp://cam/1"\n[[sinks]]\nurl = "rtmp://host/live/a"\n'
        "[latency]\nbudget_ms = 30\nsink_queue = 5\n[rate]\nfps = 50\n",
    )
    config = load_config(path)
    assert config.source.url == "rtsp://cam/1"
    assert config.latency.budget_ms == 30 and config.latency.sink_queue == 5
    assert config.rate.fps == 50 and config.rate.factor is None
    assert config.latency.source_queue == 2  # from the default
    assert config.duration is None  # the default's 10 s belong to its test scene, not to a camera

    config = load_config(
        path,
        flags("--sink", "out.mkv", "--sink", "zmq://127.0.0.1:5555", "--factor", "3", "--budget-ms", "40",
              "--duration", "2.5", "--force-step", "blend", "--metrics-port", "0", "--fp16", "--device", "cuda"),
    )  # fmt: skip
    assert [s.url for s in config.sinks] == ["out.mkv", "zmq://127.0.0.1:5555"]
    assert config.rate.factor == 3 and config.rate.fps is None  # the rate table is replaced whole
    assert config.latency.budget_ms == 40 and config.latency.sink_queue == 5
    assert config.duration == 2.5 and config.latency.force_step == "blend"
    assert config.metrics.port == 0 and config.engine.precision == "fp16" and config.engine.device == "cuda"


def test_every_flag_that_sets_a_pipeline_key_names_a_key_of_the_model():
    """run's flags carry their key as dest, interpolate's map theirs by ARGUMENTS: a typo fails here."""
    from rifestream.cli import interpolate as interpolate_cli
    from rifestream.config import PipelineConfig
    from rifestream.config.errors import field_at

    parser = argparse.ArgumentParser()
    run_cli.add_parser(parser.add_subparsers())
    args = parser.parse_args(["run"])
    keys = [key for key in vars(args) if key.split(".")[0] in PipelineConfig.model_fields]
    assert len(keys) >= 15
    for key in [*keys, *interpolate_cli.ARGUMENTS]:
        assert field_at(PipelineConfig, tuple(key.replace("sinks", "sinks.url").split("."))) is not None, key


def test_fps_flag_takes_fractions_and_the_model_path_is_relative_to_the_file(tmp_path):
    path = write(tmp_path, '[model]\npath = "weights/flownet.pkl"\n')
    config = load_config(path, flags("--fps", "60000/1001"))
    assert config.rate.fps == Fraction(60000, 1001)
    assert config.model.ref == str(tmp_path / "weights" / "flownet.pkl")
    assert load_config(path, flags("--model", "v4.6")).model.ref == "v4.6"


def test_presets_merge_under_the_pipelines_own_keys(tmp_path):
    (tmp_path / "configs").mkdir()
    write(tmp_path / "configs", "[latency]\nbudget_ms = 7\nsink_queue = 2\n[encoder]\ncrf = 30\n", "snappy.toml")
    path = write(
        tmp_path,
        'preset = "snappy"\n[latency]\nsink_queue = 6\n[[sinks]]\nurl = "a.mp4"\n[[sinks]]\nurl = "zmq://127.0.0.1:5"\n'
        '[[sinks]]\nurl = "b.mkv"\ncrf = 10\n',
    )
    config = load_config(path)
    assert config.latency.budget_ms == 7  # from the preset
    assert config.latency.sink_queue == 6  # the file's own key wins
    assert [s.crf for s in config.sinks] == [30, None, 10]  # encoder defaults skip the feed; a sink's own wins
    # a --preset flag replaces the file's preset, still under the file's own keys
    config = load_config(path, flags("--preset", "quality"))
    assert config.latency.budget_ms == 60 and config.latency.sink_queue == 6


def test_a_preset_may_not_set_the_jobs_ends(tmp_path):
    write(tmp_path, '[source]\nurl = "x.mp4"\n', "sneaky.toml")
    path = write(tmp_path, 'preset = "sneaky.toml"\n')
    with pytest.raises(RifestreamError, match=r"sneaky.toml: source: a preset may only set rate, model, engine"):
        load_config(path)


def test_shipped_presets_differ_in_latency():
    budgets = {
        name: load_config(None, {"preset": name}).latency.budget_ms for name in ("low-latency", "balanced", "quality")
    }
    assert budgets["low-latency"] < budgets["balanced"] < budgets["quality"]


@pytest.mark.parametrize("path", sorted((REPO / "pipelines").glob("*.toml")), ids=lambda p: p.name)
def test_every_shipped_pipeline_validates(path):
    if "streams" in read_toml(path, str(path)):  # a fleet file: a pipeline per stream
        pipelines = [stream.pipeline for stream in load_fleet(path).streams]
    else:
        pipelines = [load_config(path)]
    for config in pipelines:
        assert config.sinks and config.source.url
        assert config.duration is None  # a real pipeline runs until stopped


@pytest.mark.parametrize("path", sorted((REPO / "configs").glob("*.toml")), ids=lambda p: p.name)
def test_every_shipped_preset_validates(path):
    check_layer(read_toml(path, str(path)), str(path), preset=True)


def test_the_four_use_cases_and_three_presets_are_shipped():
    pipelines = {p.stem for p in (REPO / "pipelines").glob("*.toml")}
    assert {"camera-rtsp-to-rtmp", "game-capture-to-rtmp", "file-to-zmq", "rtsp-to-zmq"} <= pipelines
    assert {p.stem for p in (REPO / "configs").glob("*.toml")} >= {"low-latency", "balanced", "quality"}


# ----- issue 19, item 7: every URL, port and engine value is checked at start, in one line ----------
# A small valid job (the test scene into the null sink, 1 s, no metrics) and mutations of it, each one bad
# value; run as `rifestream run pipeline.toml` must exit 2 with one line naming the key, no traceback.
VALID_JOB = """\
duration = 1
[source]
url = "testsrc:?size=64x48&fps=10"
[[sinks]]
url = "null"
[engine]
device = "cpu"
[latency]
force_step = "blend"
[metrics]
enabled = false
"""

BAD_PIPELINES = [
    # (TOML to merge over VALID_JOB's tables, the key the error must name)
    ('[[sinks]]\nurl = "rtmp://127.0.0.1:99999/live/x"', "sinks[0].url"),
    ('[[sinks]]\nurl = "rtmp://127.0.0.1:0/live/x"', "sinks[0].url"),
    ('[[sinks]]\nurl = "rtmp://127.0.0.1:port/live/x"', "sinks[0].url"),
    ('[[sinks]]\nurl = "rtmp://127.0.0.1/live"', "sinks[0].url"),  # no stream key
    ('[[sinks]]\nurl = "rtmp:///live/x"', "sinks[0].url"),  # no host
    ('[[sinks]]\nurl = "zmq://[::]:5555"', "sinks[0].url"),
    ('[[sinks]]\nurl = "zmq://127.0.0.1"', "sinks[0].url"),
    ('[[sinks]]\nurl = "zmq://127.0.0.1:65536"', "sinks[0].url"),
    ('[[sinks]]\nurl = "zmq://:5555"', "sinks[0].url"),
    ('[[sinks]]\nurl = "zmq://256.1.1.1:5555"', "sinks[0].url"),
    ('[[sinks]]\nurl = ""', "sinks[0].url"),
    ('[[sinks]]\nurl = "null"\n[[sinks]]\nurl = "rtmp://h:1935x/live/k"', "sinks[1].url"),
    ('[source]\nurl = "rtsp://"', "source.url"),
    ('[source]\nurl = "rtsp://:554/stream"', "source.url"),
    ('[source]\nurl = "rtsp://cam:70000/stream"', "source.url"),
    ('[source]\nurl = "rtsp://[::1/stream"', "source.url"),
    ('[source]\nurl = "rtmp://127.0.0.1:-1/live/x"', "source.url"),
    ('[source]\nurl = "zmq://127.0.0.1:0"', "source.url"),
    ('[source]\nurl = "http://:8080/x.m3u8"', "source.url"),
    ("[engine]\nscale = 3", "engine.scale"),
    ("[engine]\nscale = 0.3", "engine.scale"),
    ("[engine]\nscale = nan", "engine.scale"),
    ('[engine]\ndevice = "gpu"', "engine.device"),
    ('[engine]\ndevice = "cuda:x"', "engine.device"),
    ('[engine]\nprecision = "fp8"', "engine.precision"),
    ("[engine]\nthreads = -1", "engine.threads"),
    ("[engine]\nscene_threshold = inf", "engine.scene_threshold"),
    ("[latency]\nbudget_ms = nan", "latency.budget_ms"),
    ("[latency]\nbudget_ms = inf", "latency.budget_ms"),
    ("[latency]\nsource_queue = 0", "latency.source_queue"),
    ("[metrics]\nport = 65536", "metrics.port"),
    ("[metrics]\nport = -1", "metrics.port"),
    ('[metrics]\nhost = "http://127.0.0.1"', "metrics.host"),
    ('[metrics]\nhost = "not a host"', "metrics.host"),
    ('[metrics]\nhost = "::1::2"', "metrics.host"),
    ("[reconnect]\ninitial_delay_s = nan", "reconnect.initial_delay_s"),
    ("[reconnect]\nmax_delay_s = 1e300", "reconnect.max_delay_s"),
    ("[reconnect]\nstall_timeout_s = 0", "reconnect.stall_timeout_s"),
    ("[rate]\nfps = inf", "rate.fps"),
    ('[rate]\nfps = "1e400"', "rate.fps"),
    ('[encoder]\nbitrate = "infM"', "encoder.bitrate"),
    ('[encoder]\ncodec = "nope"', "encoder.codec"),
    ("[rate]\nfactor = 100000000000", "rate.factor"),  # was an OverflowError traceback
    ('[[sinks]]\nurl = "out.mp4"\ngop = 100000000000000000000', "sinks[0].gop"),
    ('[[sinks]]\nurl = "out.mp4"\nbitrate = 100000000000000000000', "sinks[0].bitrate"),
    ('[[sinks]]\nurl = "out.mp4"\ncodec = "aac"', "sinks[0].codec"),  # an audio encoder was a TypeError
    ('[[sinks]]\nurl = "out.mp4"\npix_fmt = "nope"', "sinks[0].pix_fmt"),  # was a ValueError traceback
    ("duration = nan", "duration"),
    ("duration = inf", "duration"),
]


def _mutated(change: str) -> str:
    """VALID_JOB with the tables in ``change`` replacing its own ([[sinks]] replaces every sink)."""
    import tomllib

    data = tomllib.loads(VALID_JOB)
    for key, value in tomllib.loads(change).items():
        data[key] = {**data[key], **value} if isinstance(value, dict) and key in data else value
    return _to_toml(data)


def _to_toml(data: dict) -> str:
    """Enough TOML for these jobs (strings, numbers, tables, arrays of tables); nan/inf written as TOML spells them."""
    import json
    import math

    def value(v):
        if isinstance(v, float) and not math.isfinite(v):
            return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")
        if isinstance(v, bool):
            return "true" if v else "false"
        return json.dumps(v) if isinstance(v, str) else repr(v)

    lines = [f"{k} = {value(v)}" for k, v in data.items() if not isinstance(v, dict | list)]
    for k, v in data.items():
        if isinstance(v, dict):
            lines += [f"[{k}]", *(f"{kk} = {value(vv)}" for kk, vv in v.items())]
        elif isinstance(v, list):
            for item in v:
                lines += [f"[[{k}]]", *(f"{kk} = {value(vv)}" for kk, vv in item.items())]
    return "\n".join(lines) + "\n"


def test_the_valid_job_runs(tmp_path, capsys):
    from rifestream.cli import main

    write(tmp_path, VALID_JOB)
    assert main(["run", "pipeline.toml"]) == 0
    assert "frames out" in capsys.readouterr().out


@pytest.mark.parametrize(("change", "key"), BAD_PIPELINES, ids=[c for c, _ in BAD_PIPELINES])
def test_a_mutated_pipeline_stops_at_start_with_one_line_naming_the_key(tmp_path, capsys, change, key):
    from rifestream.cli import main

    write(tmp_path, _mutated(change))
    assert main(["run", "pipeline.toml"]) == 2
    out, err = capsys.readouterr()
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith(f"rifestream run: error: pipeline.toml: {key}: expected "), lines[0]
    assert ", got " in lines[0] or "got" not in lines[0]
    assert "Traceback" not in err and out == ""


# ----- a model that cannot be loaded is an error, never a silent switch to blending ------------------
MODEL_JOB = VALID_JOB.replace('[latency]\nforce_step = "blend"\n', "")


def test_a_default_model_that_fails_to_load_stops_the_job(tmp_path, capsys, monkeypatch):
    """The default model's file is there but broken: exit 2 naming the file, not a blended stream."""
    from rifestream.cli import main
    from rifestream.model import registry

    shipped = tmp_path / "weights"
    shipped.mkdir()
    # the default model for this job's device (a CPU may have a default of its own)
    defaults = {registry.DEFAULT_MODEL, getattr(registry, "DEFAULT_CPU_MODEL", registry.DEFAULT_MODEL)}
    for name in defaults:
        (shipped / f"{name}.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not json")
    monkeypatch.setattr(registry, "SHIPPED_DIR", shipped)
    write(tmp_path, MODEL_JOB)
    assert main(["run", "pipeline.toml"]) == 2
    out, err = capsys.readouterr()
    errors = [line for line in err.splitlines() if "error" in line.lower()]
    assert len(errors) == 1 and errors[0].startswith("rifestream run: error: "), err
    assert any(f"{name}.safetensors" in errors[0] for name in defaults), errors[0]
    assert "no model available" not in err and "frames out" not in out


def test_a_fresh_checkout_without_the_default_model_blends_and_says_so_once(tmp_path, capsys, caplog, monkeypatch):
    """docs/CLI.md's promise for `rifestream run`: no default model file at all → one warning line, blended frames."""
    from rifestream.cli import main
    from rifestream.model import registry

    monkeypatch.setattr(registry, "SHIPPED_DIR", tmp_path / "no-weights")
    write(tmp_path, MODEL_JOB)
    assert main(["run", "pipeline.toml"]) == 0
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len([w for w in warnings if w.startswith("no model available")]) == 1, warnings
    assert "note: no model available: in-between frames blended" in capsys.readouterr().out


def _stderr_lines_that_are_not_log_lines(err: str) -> list[str]:
    import re

    return [line for line in err.splitlines() if line.strip() and not re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", line)]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["--sink", "rtmp://127.0.0.1:99999/live/x"], "command line: sinks[0].url: expected a port from 1 to 65535"),
        (["--scale", "3"], "command line: engine.scale: expected one of 0.25, 0.5, 1, 2, 4"),
        (["--sink", "zmq://[::]:5599"], "command line: sinks[0].url: expected zmq://HOST:PORT with an IPv4 address"),
        (["--device", "gpu"], 'command line: engine.device: expected one of "auto", "cpu", "cuda", "cuda:N"'),
        (["--model", "plain.pkl"], "plain.pkl: not a safe PyTorch weights file"),
        (["--model", "plain.pkl", "--force-step", "model"], "plain.pkl: not a safe PyTorch weights file"),
    ],
    ids=["rtmp-port", "scale-3", "zmq-ipv6", "device-gpu", "plain-pickle", "plain-pickle-model-step"],
)
def test_bad_flags_in_a_real_process_exit_2_with_one_line(tmp_path, argv, named):
    """As an operator runs it: its own process, exit status 2, one error line, no traceback, no torch warning."""
    import pickle
    import subprocess
    import sys

    (tmp_path / "plain.pkl").write_bytes(pickle.dumps({"weights": object}, protocol=4))
    cmd = [sys.executable, "-m", "rifestream", "run", "--no-metrics", "--duration", "1", "--sink", "null", *argv]
    if "--sink" in argv:  # the test's own sink replaces the null one
        cmd.remove("null")
        cmd.remove("--sink")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    lines = _stderr_lines_that_are_not_log_lines(proc.stderr)
    assert lines == [lines[0]] and lines[0].startswith(f"rifestream run: error: {named}"), proc.stderr
    assert "Traceback" not in proc.stderr and "Warning" not in proc.stderr


def test_reconnect_start_timeout_and_probe_interval_default_and_override(tmp_path):
    """``[reconnect] start_timeout_s`` (how long a source or sink may take to open at the start) and
    ``probe_interval_s`` (how often a lost server's port is looked at): defaults, a file's values, checks."""
    config = load_config()
    assert config.reconnect.start_timeout_s == 10.0 and config.reconnect.probe_interval_s == 0.25
    write(tmp_path, '[source]\nurl = "rtsp://cam.local/s"\n[reconnect]\nstart_timeout_s = 4\nprobe_interval_s = 0.1\n')
    config = load_config("pipeline.toml")
    assert config.reconnect.start_timeout_s == 4.0 and config.reconnect.probe_interval_s == 0.1
    for text, key in (
        ("[reconnect]\nstart_timeout_s = 0\n", "reconnect.start_timeout_s"),
        ('[reconnect]\nstart_timeout_s = "soon"\n', "reconnect.start_timeout_s"),
        ("[reconnect]\nprobe_interval_s = 0.001\n", "reconnect.probe_interval_s"),  # a port looked at 1000×/s
        ("[reconnect]\nprobe_interval_s = 60\n", "reconnect.probe_interval_s"),  # would break the 2 s bound
    ):
        write(tmp_path, text)
        with pytest.raises(RifestreamError, match=f"^pipeline.toml: {key}: expected "):
            load_config("pipeline.toml")


def test_a_feed_that_cannot_bind_says_why(tmp_path, capsys):
    """The port in use, or an address that is not this machine's: each says so (not "is the port in use?")."""
    import zmq

    from rifestream.cli import main

    taken = zmq.Context.instance().socket(zmq.PUB)
    port = taken.bind_to_random_port("tcp://127.0.0.1")
    try:
        for url, hint in (
            (f"zmq://127.0.0.1:{port}", "the port is in use; pick another"),
            ("zmq://192.0.2.1:5555", "give an address of this machine"),  # TEST-NET-1: no interface has it
            ("zmq://no-such-interface:5555", "give an address of this machine"),
        ):
            write(tmp_path, _mutated(f'[[sinks]]\nurl = "{url}"'))
            assert main(["run", "pipeline.toml"]) == 2
            lines = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
            assert len(lines) == 1 and lines[0].startswith(f"rifestream run: error: {url}: cannot bind"), lines
            assert lines[0].endswith(hint) or hint in lines[0], lines[0]
            if "in use" not in hint:
                assert "in use" not in lines[0]
    finally:
        taken.close(linger=0)


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["interpolate", "in.mp4", "out.mp4", "--codec", "aac"], "--codec: expected a video encoder"),
        (["interpolate", "in.mp4", "out.mp4", "--factor", "100000000000"], "--factor: expected a whole number"),
        (["interpolate", "in.mp4", "out.mp4", "--scale", "3"], "--scale: expected one of 0.25, 0.5, 1, 2, 4"),
        (["interpolate", "in.mp4", "out.mp4", "--device", "gpu"], "--device: expected one of"),
        (["interpolate", "in.mp4", "out.mp4", "--scene-threshold", "nan"], "--scene-threshold must be a number ≥ 0"),
        (["interpolate", "rtsp://cam:99999/s", "out.mp4"], "INPUT: expected a port from 1 to 65535"),
        (["interpolate", "in.mp4", "rtmp://127.0.0.1:99999/live/k"], "OUTPUT: expected a port from 1 to 65535"),
        (["probe", "rtmp://127.0.0.1:99999/live/k"], "URL: expected a port from 1 to 65535"),
        (["probe", "zmq://[::]:5555"], "URL: expected zmq://HOST:PORT with an IPv4 address"),
        (["bench", "--device", "gpu"], "--device: expected one of"),
        (["bench", "--scale", "0.3"], "--scale: expected one of 0.25, 0.5, 1, 2, 4"),
        (["eval", "clip.mp4", "--device", "cuda:x"], "--device: expected one of"),
        (["train", "--device", "tpu"], "--device: expected one of"),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, list) else None,
)
def test_the_other_commands_check_their_url_and_engine_flags_in_one_line(tmp_path, capsys, argv, named):
    from rifestream.cli import main

    assert main(argv) == 2
    out, err = capsys.readouterr()
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"rifestream {argv[0]}: error: {named}"), err


def test_metrics_that_cannot_be_served_say_whether_the_port_or_the_host_is_wrong(tmp_path, capsys):
    import socket

    from rifestream.cli import main

    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        for metrics, hint in (
            (f"[metrics]\nenabled = true\nport = {taken.getsockname()[1]}", "choose another port with --metrics-port"),
            ('[metrics]\nenabled = true\nport = 0\nhost = "192.0.2.1"', "set [metrics] host to an address of this"),
        ):
            write(tmp_path, _mutated(metrics))
            assert main(["run", "pipeline.toml"]) == 2
            lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
            assert len(lines) == 1 and lines[0].startswith("rifestream run: error: cannot serve metrics on "), lines
            assert hint in lines[0], lines[0]
    finally:
        taken.close()
