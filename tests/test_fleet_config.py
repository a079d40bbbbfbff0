"""The fleet file: [defaults] under every [[streams]] table, each stream a pipeline checked by the same model."""

from __future__ import annotations

from pathlib import Path

import pytest

from rifestream.config import PipelineConfig, load_config, load_fleet, validate_pipeline
from rifestream.errors import RifestreamError

FLEET = """\
[defaults]
preset = "low-latency"
[defaults.engine]
device = "cpu"
scale = 0.5
[defaults.latency]
sink_queue = 3
[defaults.encoder]
crf = 30

[[streams]]
name = "cam-1"
source = { url = "rtsp://cam1.local/stream" }
sinks = ["rtmp://ingest.local/live/cam1", "zmq://127.0.0.1:5601"]
[streams.engine]
scale = 1

[[streams]]
name = "cam_2"
source = { url = "rtsp://cam2.local/stream" }
[[streams.sinks]]
url = "cam2.mkv"
crf = 18
[streams.model]
path = "weights/own.safetensors"
"""


@pytest.fixture(autouse=True)
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)


def write(folder: Path, text: str, name: str = "fleet.toml") -> Path:
    path = folder / name
    path.write_text(text)
    return path


def test_each_stream_is_a_pipeline_over_the_fleets_defaults(tmp_path):
    fleet = load_fleet(write(tmp_path, FLEET))
    assert [s.name for s in fleet.streams] == ["cam-1", "cam_2"]
    one, two = (s.pipeline for s in fleet.streams)
    assert isinstance(one, PipelineConfig) and fleet.stream("cam_2") is two
    assert one.source.url == "rtsp://cam1.local/stream" and two.source.url == "rtsp://cam2.local/stream"
    # defaults merged key by key under each stream: the stream's own key wins, the rest come through
    assert one.engine.device == two.engine.device == "cpu"
    assert one.engine.scale == 1.0 and two.engine.scale == 0.5
    # the defaults' preset lies under the defaults (low-latency's budget), the model's defaults under that
    preset = load_config(None, {"preset": "low-latency"})
    assert one.latency.budget_ms == two.latency.budget_ms == preset.latency.budget_ms
    assert one.reconnect.start_timeout_s == 10.0
    # sinks resolved as in a pipeline file: encoder defaults for encoding sinks, the queue from latency
    assert [(s.url, s.crf, s.queue) for s in one.sinks] == [
        ("rtmp://ingest.local/live/cam1", 30, 3),
        ("zmq://127.0.0.1:5601", None, 3),
    ]
    assert [(s.url, s.crf) for s in two.sinks] == [("cam2.mkv", 18)]
    assert two.model.ref == str(tmp_path / "weights" / "own.safetensors")  # relative to the fleet file
    assert one.duration is None and two.duration is None  # a named source runs until stopped


def test_a_stream_resolves_exactly_as_the_same_pipeline_file_does(tmp_path):
    """validate_pipeline (a table) and load_config (a file) give the same resolved pipeline."""
    text = '[source]\nurl = "rtsp://cam/1"\n[[sinks]]\nurl = "out.mp4"\nbitrate = "4M"\n[rate]\nfps = "30000/1001"\n'
    import tomllib

    assert validate_pipeline(tomllib.loads(text), "fleet.toml") == load_config(write(tmp_path, text, "p.toml"))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        # a stream's bad key: the stream's place in the file, then the key as in a pipeline file
        (
            ('sinks = ["rtmp://ingest.local/live/cam1"', 'sinks = ["rtmp://ingest.local:99999/live/cam1"'),
            "fleet.toml: streams[0].sinks[0].url: expected a port from 1 to 65535 in the URL",
        ),
        (
            ('url = "cam2.mkv"\ncrf = 18', 'url = "cam2.mkv"\ncrf = 99'),
            "fleet.toml: streams[1].sinks[0].crf: expected a whole number from 0 to 63, got 99",
        ),
        (
            ("[streams.engine]\nscale = 1", "[streams.engine]\nscale = 3"),
            "fleet.toml: streams[0].engine.scale: expected one of 0.25, 0.5, 1, 2, 4 (0.5 for 4K), got 3",
        ),
        (
            ("[streams.engine]\nscale = 1", "[streams.engine]\nspeed = 1"),
            "fleet.toml: streams[0].engine.speed: unknown key; expected one of device, precision,",
        ),
        (
            ("[streams.model]\npath", "[streams.rate]\nfactor = 2\nfps = 60\n[streams.model]\npath"),
            "fleet.toml: streams[1].rate: expected either factor or fps, got both",
        ),
        # the defaults' bad key, named as such
        (
            ("[defaults.latency]\nsink_queue = 3", "[defaults.latency]\nsink_queue = 0"),
            "fleet.toml: defaults.latency.sink_queue: expected a whole number from 1 to 1000, got 0",
        ),
        (('preset = "low-latency"', 'preset = "turbo"'), "fleet.toml: defaults.preset: expected one of low-latency"),
        # names
        (
            ('name = "cam_2"', 'name = "cam-1"'),
            'fleet.toml: streams[1].name: expected a name no other stream has, got "cam-1"',
        ),
        (
            ('name = "cam_2"', 'name = "Cam 2"'),
            "fleet.toml: streams[1].name: expected a stream name of lower-case "
            'letters, digits, _ and - (at most 64), e.g. "cam-1", got "Cam 2"',
        ),
        (('name = "cam_2"\n', ""), "fleet.toml: streams[1].name: expected a stream name"),
        # the file's shape
        (
            ("[defaults]\n", "[fleet]\nsize = 2\n[defaults]\n"),
            "fleet.toml: fleet: unknown key; expected one of defaults, streams",
        ),
        (
            ('source = { url = "rtsp://cam2.local/stream" }\n', ""),
            "fleet.toml: streams[1].source.url: expected a source URL; each stream names its own (or [defaults] does)",
        ),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_a_bad_fleet_fails_with_one_line_naming_the_stream_and_the_key(tmp_path, change, message):
    old, new = change
    assert old in FLEET
    write(tmp_path, FLEET.replace(old, new, 1))
    with pytest.raises(RifestreamError) as err:
        load_fleet("fleet.toml")
    assert "\n" not in str(err.value)
    assert str(err.value).startswith(message), str(err.value)


def test_streams_must_be_a_list_of_tables(tmp_path):
    for text, message in (
        ("[defaults]\n", "fleet.toml: streams: expected one [[streams]] table per pipeline, each with a name"),
        ("streams = []\n", "fleet.toml: streams: expected a non-empty list of streams"),
        ('streams = ["cam"]\n', 'fleet.toml: streams[0]: expected a table, got "cam"'),
        ('defaults = 3\n[[streams]]\nname = "a"\n', "fleet.toml: defaults: expected a table, got 3"),
    ):
        write(tmp_path, text)
        with pytest.raises(RifestreamError) as err:
            load_fleet("fleet.toml")
        assert str(err.value).startswith(message), str(err.value)


def test_a_pipeline_table_is_checked_with_a_location_prefix():
    with pytest.raises(RifestreamError) as err:
        validate_pipeline({"sinks": [{"url": "zmq://[::]:5555"}]}, "fleet.toml", prefix="streams[2].")
    assert str(err.value) == (
        "fleet.toml: streams[2].sinks[0].url: expected zmq://HOST:PORT with an IPv4 address or a host name "
        '(0.0.0.0: every interface); no IPv6, got "zmq://[::]:5555"'
    )
