"""The pipeline config: a TOML file, checked against one schema, layered with presets and flags.

Layers, lowest first (a higher layer's keys replace a lower one's):

1. the embedded default (package data ``rifestream/defaults/default.toml``): the
   built-in moving test scene at 30 fps → 60 fps, written to a file, metrics on
   port 9108, for 10 seconds;
2. the preset named by ``preset = "low-latency" | "balanced" | "quality"`` (a file
   ``configs/NAME.toml``, or a path to a ``.toml`` file) — engine, latency, model,
   rate and encoder settings only;
3. the pipeline file itself;
4. command-line flags.

Tables merge key by key, except ``rate`` (``factor`` or ``fps``) and ``model``
(``name`` or ``path``), which a higher layer replaces whole, and ``sinks``, a list
a higher layer replaces whole. The default's ``duration`` belongs to its test
scene: once a layer names another source, the stream runs until stopped unless
that layer (or a higher one) sets a ``duration`` itself.

Schema (every key optional; see README section ``cli-run``)::

    preset = "balanced"            # configs/balanced.toml merged under this file
    duration = 10.0                # seconds, then stop cleanly; absent = until stopped

    [source]
    url = "rtsp://cam/stream"      # file, rtsp://, rtmp://, srt://, capture:..., testsrc:..., zmq://...
    realtime = true                # pace a file to its frame rate (a stand-in for a live input);
                                   # absent: files unpaced, live inputs and the test scene at their pace
    options = { rtsp_transport = "tcp" }   # FFmpeg demuxer/protocol options

    [[sinks]]                      # one table per sink (or sinks = ["out.mp4", "zmq://127.0.0.1:5555"])
    url = "rtmp://host/live/key"   # rtmp://, a file path (format by extension), zmq://HOST:PORT, null
    codec = "libx264"              # encoding sinks: codec, pix_fmt, crf, bitrate, gop, options
                                   # (zmq:// takes pix_fmt: rgb24, bgr24, gray, yuv420p)
    crf = 23
    bitrate = "4M"
    gop = 60
    options = { preset = "veryfast", tune = "zerolatency" }
    queue = 8                      # this sink's queue (frames); default latency.sink_queue

    [encoder]                      # defaults for every encoding sink (presets set these)
    codec = "libx264"
    options = { preset = "veryfast" }

    [rate]
    factor = 2                     # or fps = 60 (also "30000/1001")

    [model]
    name = "rifestream-v7"         # or path = "weights/flownet.pkl" (relative to this file)

    [engine]
    device = "auto"                # auto, cpu, cuda, cuda:N
    precision = "fp32"             # or fp16 (CUDA)
    scale = 1.0                    # 0.25, 0.5, 1, 2 or 4 (0.5 for 4K)
    scene_threshold = 0.15         # 0 … 1; false disables scene-cut detection
    threads = 0                    # torch CPU threads; 0: torch's default (1 when no model is loaded)
    cupy_kernels = false           # CUDA: CuPy warp + colour kernels (opt-in: not yet verified on a GPU)

    [latency]
    budget_ms = 25.0               # time allowed from a frame's arrival to its pair being made
    force_step = "blend"           # pin one ladder step: model, scale, classical, blend, repeat
    source_queue = 2               # frames between the source and the engine
    sink_queue = 8                 # frames before each sink

    [reconnect]
    initial_delay_s = 0.5          # first retry delay; doubled per failure …
    max_delay_s = 10.0             # … up to this
    stall_timeout_s = 10.0         # a network sink whose server takes no data this long is reopened
    probe_interval_s = 0.25        # while a lost server's port refuses, look at it this often; reopen when it accepts
    start_timeout_s = 10.0         # a source or sink not open this long after the start ends the job (exit 2)

    [metrics]
    enabled = true
    port = 9108                    # 0 picks a free port
    host = "127.0.0.1"
"""

from __future__ import annotations

import copy
import ipaddress
import json
import math
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from importlib import resources
from pathlib import Path
from typing import Any

from rifestream.errors import RifestreamError
from rifestream.io.url_redact import STREAM_KEY_SCHEMES, redact_text

LADDER_STEPS = ("model", "scale", "classical", "blend", "repeat")
PRESETS = ("low-latency", "balanced", "quality")
REPLACED_WHOLE = ("rate", "model", "sinks")
ENCODER_KEYS = ("codec", "pix_fmt", "crf", "bitrate", "gop", "options")


# ----- value checks: each returns the normalised value or raises _Bad(expected) ------------------
class _Bad(Exception):
    def __init__(self, expected: str) -> None:
        self.expected = expected


Check = Callable[[Any], Any]


def _is_number(value: Any) -> bool:
    """An int or a finite float (TOML has ``nan`` and ``inf``; no setting takes them)."""
    return not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value)


def _number(value: Any) -> float:
    if not _is_number(value):
        raise _Bad("a number")
    return float(value)


def _positive(value: Any) -> float:
    if not _is_number(value) or value <= 0:
        raise _Bad("a positive number")
    return float(value)


def _seconds(value: Any) -> float:
    """A positive time in seconds, at most a day (a wait longer than that is a typo)."""
    if not _is_number(value) or not 0 < value <= 86_400:
        raise _Bad("a positive number of seconds, at most 86400")
    return float(value)


def _int_range(lo: int, hi: int | None = None) -> Check:
    expected = f"a whole number ≥ {lo}" if hi is None else f"a whole number from {lo} to {hi}"

    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < lo or (hi is not None and value > hi):
            raise _Bad(expected)
        return value

    return check


def _range(lo: float, hi: float) -> Check:
    def check(value: Any) -> float:
        if not _is_number(value) or not lo <= value <= hi:
            raise _Bad(f"a number from {lo:g} to {hi:g}")
        return float(value)

    return check


def _string(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _Bad("a non-empty string")
    return value


def _boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise _Bad("true or false")
    return value


def _one_of(*choices: str) -> Check:
    def check(value: Any) -> str:
        if value not in choices:
            raise _Bad("one of " + ", ".join(f'"{c}"' for c in choices))
        return value

    return check


def _options(value: Any) -> dict[str, str]:
    """FFmpeg options: a table of names to strings (numbers and booleans are turned into strings)."""
    if not isinstance(value, dict) or any(isinstance(v, dict | list) for v in value.values()):
        raise _Bad('a table of option names to values, e.g. { rtsp_transport = "tcp" }')
    return {str(k): (("1" if v else "0") if isinstance(v, bool) else str(v)) for k, v in value.items()}


def _fps(value: Any) -> Fraction:
    expected = 'a positive frame rate, e.g. 60, 59.94 or "30000/1001"'
    if isinstance(value, bool):
        raise _Bad(expected)
    try:
        rate = Fraction(value) if isinstance(value, int | str) else Fraction(value).limit_denominator(1001 * 1000)
    except (ValueError, TypeError, ZeroDivisionError, OverflowError):
        raise _Bad(expected) from None
    if rate <= 0 or rate > 10_000:
        raise _Bad(expected)
    return rate


def _bitrate(value: Any) -> int:
    """Bits per second: a whole number or a string like "4M", "800k"."""
    expected = 'a bit rate, e.g. 4000000, "4M" or "800k"'
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value < 1e12:
        return value
    if isinstance(value, str):
        text = value.strip().lower()
        mult = {"k": 1_000, "m": 1_000_000, "g": 1_000_000_000}.get(text[-1:], 1)
        number = text[:-1] if mult != 1 else text
        try:
            bits = float(number) * mult
        except ValueError:
            raise _Bad(expected) from None
        if 0 < bits < 1e12:
            return int(bits)
    raise _Bad(expected)


def _threshold(value: Any) -> float | None:
    if value is False:
        return None
    if not _is_number(value) or not 0 <= value <= 1:
        raise _Bad("a number from 0 to 1, or false to turn scene-cut detection off")
    return float(value)


def _duration(value: Any) -> float | None:
    if value is False:
        return None
    if not _is_number(value) or not 0 < value <= 1e9:
        raise _Bad("a positive number of seconds (or false: until stopped)")
    return float(value)


# ----- URLs, hosts and engine values -------------------------------------------------------------
# Schemes whose URL must name a host (a listener form such as srt://:9000?mode=listener or
# udp://@:1234 needs none); every scheme's port, when given, must be a port number.
RTMP_SCHEMES = STREAM_KEY_SCHEMES
HOST_SCHEMES = ("rtsp", "rtsps", *RTMP_SCHEMES, "http", "https", "zmq")
SCALES = (0.25, 0.5, 1.0, 2.0, 4.0)
_DEVICE_RE = re.compile(r"auto|cpu|cuda(:\d{1,3})?")


def _split_authority(url: str) -> tuple[str, str, str | None, str]:
    """``(scheme, host, port or None, path)`` of ``scheme://[user@]host[:port]/path``; ``_Bad`` if malformed."""
    scheme, _, rest = url.partition("://")
    authority = re.split(r"[/?#]", rest, maxsplit=1)[0]
    path = rest[len(authority) :].split("?", 1)[0].split("#", 1)[0]
    hostport = authority.rpartition("@")[2]
    if hostport.startswith("["):
        host, bracket, after = hostport[1:].partition("]")
        if not bracket or (after and not after.startswith(":")):
            raise _Bad(f"an IPv6 host in brackets, like {scheme}://[::1]:PORT")
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise _Bad(f"an IPv6 address in the brackets, like {scheme}://[::1]:PORT") from None
        port = after[1:] if after else None
    else:
        host, colon, port = hostport.partition(":")
        port = port if colon else None
    return scheme.lower(), host, port, path


def _check_url(url: str, role: str) -> str:
    """Host, port and (for an RTMP sink) stream key of a network URL; ``role`` is "source" or "sink"."""
    if "://" not in url:
        return url  # a file path, testsrc:, capture:, null: checked when opened
    scheme, host, port, path = _split_authority(url.strip())
    if scheme == "zmq":
        lowest = 0 if role == "sink" else 1
        if not host or port is None or not port.isdigit() or not lowest <= int(port) <= 65535:
            raise _Bad(f"zmq://HOST:PORT with a port from {lowest} to 65535, e.g. zmq://127.0.0.1:5555")
        if ":" in host:
            raise _Bad("zmq://HOST:PORT with an IPv4 address or a host name (0.0.0.0: every interface); no IPv6")
        if re.fullmatch(r"[\d.]+", host):
            try:
                ipaddress.IPv4Address(host)
            except ValueError:
                raise _Bad("zmq://HOST:PORT with a valid IPv4 address, like zmq://127.0.0.1:5555") from None
        return url
    # (the examples show no path: the redaction of error lines would mask an RTMP one as a stream key)
    example = f"{scheme}://HOST[:PORT]"
    if scheme in HOST_SCHEMES and not host:
        raise _Bad(f"a URL with a host, like {example}")
    if port is not None and (not port.isdigit() or not 1 <= int(port) <= 65535):
        raise _Bad(f"a port from 1 to 65535 in the URL, like {example}")
    if scheme in RTMP_SCHEMES and role == "sink" and len([p for p in path.split("/") if p]) < 2:
        raise _Bad(f"an RTMP URL naming an application and a stream key: {scheme}://HOST[:PORT]/APP/ and the key")
    return url


def _source_url(value: Any) -> str:
    return _check_url(_string(value), "source")


def _sink_url(value: Any) -> str:
    return _check_url(_string(value), "sink")


def _host(value: Any) -> str:
    """A host name or an IP address (IPv6 without brackets) to listen on."""
    text = _string(value).strip()
    expected = 'a host name or an IP address to listen on, e.g. "127.0.0.1", "0.0.0.0" or "::1"'
    if ":" in text:
        try:
            ipaddress.IPv6Address(text)
        except ValueError:
            raise _Bad(expected) from None
    elif not re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?", text):
        raise _Bad(expected)
    return text


def _device(value: Any) -> str:
    if not isinstance(value, str) or not _DEVICE_RE.fullmatch(value.strip().lower()):
        raise _Bad('one of "auto", "cpu", "cuda", "cuda:N"')
    return value.strip().lower()


def _codec(value: Any) -> str:
    """A video encoder this FFmpeg has (or "auto"); an audio codec or a typo fails here, naming the key."""
    name = _string(value).strip()
    if name == "auto":
        return name
    import av  # here, not at the top: only a config that names a codec pays for it

    try:
        kind = av.Codec(name, "w").type
    except ValueError:  # av's UnknownCodecError
        kind = None
    if kind != "video":
        raise _Bad('a video encoder this FFmpeg has, e.g. "libx264", "ffv1", or "auto"')
    return name


def _pix_fmt(value: Any) -> str:
    name = _string(value).strip()
    import av

    try:
        av.VideoFormat(name)
    except ValueError:
        raise _Bad('a pixel format FFmpeg knows, e.g. "yuv420p", "yuv444p", "rgb24"') from None
    return name


def _scale(value: Any) -> float:
    if not _is_number(value) or float(value) not in SCALES:
        raise _Bad("one of 0.25, 0.5, 1, 2, 4 (0.5 for 4K)")
    return float(value)


_ENCODER_SCHEMA: dict[str, Check] = {
    "codec": _codec,
    "pix_fmt": _pix_fmt,
    "crf": _int_range(0, 63),
    "bitrate": _bitrate,
    "gop": _int_range(1, 100_000),
    "options": _options,
}

SCHEMA: dict[str, Any] = {
    "preset": _string,
    "duration": _duration,
    "source": {"url": _source_url, "realtime": _boolean, "options": _options},
    "sinks": "sinks",  # a list, checked by _check_sinks
    "encoder": _ENCODER_SCHEMA,
    "rate": {"factor": _int_range(1, 1000), "fps": _fps},
    "model": {"name": _string, "path": _string},
    "engine": {
        "device": _device,
        "precision": _one_of("fp32", "fp16"),
        "scale": _scale,
        "scene_threshold": _threshold,
        "threads": _int_range(0, 256),
        "cupy_kernels": _boolean,
    },
    "latency": {
        "budget_ms": _positive,
        "force_step": _one_of(*LADDER_STEPS),
        "source_queue": _int_range(1, 1000),
        "sink_queue": _int_range(1, 1000),
    },
    "reconnect": {
        "initial_delay_s": _seconds,
        "max_delay_s": _seconds,
        "stall_timeout_s": _seconds,
        "probe_interval_s": _range(0.05, 5.0),
        "start_timeout_s": _seconds,
    },
    "metrics": {"enabled": _boolean, "port": _int_range(0, 65535), "host": _host},
}
SINK_SCHEMA: dict[str, Check] = {"url": _sink_url, "queue": _int_range(1, 1000), **_ENCODER_SCHEMA}
# Keys a preset may set: settings of the engine and the encoders, never the job's own ends.
PRESET_KEYS = ("rate", "model", "engine", "latency", "encoder", "reconnect")


def _shown(value: Any) -> str:
    """A value as the user wrote it (TOML-ish): strings quoted, booleans lower-case."""
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, Fraction):
        return str(value)
    try:
        return redact_text(json.dumps(value, ensure_ascii=False))
    except (TypeError, ValueError):
        return repr(value)


def _fail(origin: str, key: str, expected: str, value: Any = None, *, given: bool = True) -> RifestreamError:
    got = f", got {_shown(value)}" if given else ""
    return RifestreamError(f"{origin}: {key}: expected {expected}{got}")


def _check_table(table: Any, schema: Mapping[str, Any], origin: str, prefix: str) -> dict[str, Any]:
    if not isinstance(table, dict):
        raise _fail(origin, prefix.rstrip("."), "a table", table)
    out: dict[str, Any] = {}
    for key, value in table.items():
        path = f"{prefix}{key}"
        if key not in schema:
            known = ", ".join(schema)
            raise RifestreamError(f"{origin}: {path}: unknown key; expected one of {known}")
        rule = schema[key]
        if rule == "sinks":
            out[key] = _check_sinks(value, origin)
        elif isinstance(rule, dict):
            out[key] = _check_table(value, rule, origin, f"{path}.")
        else:
            try:
                out[key] = rule(value)
            except _Bad as bad:
                raise _fail(origin, path, bad.expected, value) from None
    return out


def _check_sinks(value: Any, origin: str) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not value:
        raise _fail(origin, "sinks", 'a non-empty list of sinks, e.g. [[sinks]] url = "out.mp4"', value)
    sinks = []
    for i, item in enumerate(value):
        if isinstance(item, str):
            item = {"url": item}
        sink = _check_table(item, SINK_SCHEMA, origin, f"sinks[{i}].")
        if "url" not in sink:
            raise _fail(
                origin, f"sinks[{i}].url", "a sink URL (a file path, rtmp://…, zmq://HOST:PORT or null)", given=False
            )
        sinks.append(sink)
    return sinks


def check_layer(data: Mapping[str, Any], origin: str, *, preset: bool = False) -> dict[str, Any]:
    """One layer checked against the schema and normalised (e.g. "4M" → 4000000); errors name the key."""
    layer = _check_table(dict(data), SCHEMA, origin, "")
    for table, keys in (("rate", ("factor", "fps")), ("model", ("name", "path"))):
        if table in layer and all(k in layer[table] for k in keys):
            raise RifestreamError(f"{origin}: {table}: expected either {keys[0]} or {keys[1]}, got both")
    if preset:
        for key in layer:
            if key not in PRESET_KEYS:
                raise RifestreamError(f"{origin}: {key}: a preset may only set {', '.join(PRESET_KEYS)}")
    return layer


def check_value(key: str, value: Any, name: str) -> Any:
    """One setting (``key`` dotted, e.g. ``engine.device``, ``sinks.url``) checked by the pipeline schema's
    rule for it, for commands that take it as a flag or argument ``name``: ``NAME: expected …, got …``."""
    rule: Any = SCHEMA
    for part in key.split("."):
        rule = (SINK_SCHEMA if rule == "sinks" else rule)[part]
    try:
        return rule(value)
    except _Bad as bad:
        raise RifestreamError(f"{name}: expected {bad.expected}, got {_shown(value)}") from None


def merge(lower: Mapping[str, Any], higher: Mapping[str, Any]) -> dict[str, Any]:
    """``higher`` over ``lower``: tables key by key (options too), rate/model/sinks replaced whole."""
    out = copy.deepcopy(dict(lower))
    for key, value in higher.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict) and key not in REPLACED_WHOLE:
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


# ----- files --------------------------------------------------------------------------------------
def read_toml(path: Path, origin: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise RifestreamError(f"{origin}: no such file; give an existing pipeline .toml (see pipelines/)") from None
    except tomllib.TOMLDecodeError as exc:
        raise RifestreamError(f"{origin}: not valid TOML ({exc})") from None
    except OSError as exc:
        raise RifestreamError(f"{origin}: cannot read it ({exc.strerror})") from None


def default_layer() -> dict[str, Any]:
    """The embedded default job (package data)."""
    text = resources.files("rifestream.defaults").joinpath("default.toml").read_text(encoding="utf-8")
    return check_layer(tomllib.loads(text), "rifestream/defaults/default.toml")


def preset_search_dirs(pipeline_dir: Path | None) -> list[Path]:
    """Where ``preset = NAME`` is looked up: next to the pipeline (``configs/``, ``../configs/``),
    the working directory's ``configs/``, and the checkout's ``configs/``."""
    dirs = []
    if pipeline_dir is not None:
        dirs += [pipeline_dir / "configs", pipeline_dir.parent / "configs", pipeline_dir]
    dirs.append(Path.cwd() / "configs")
    dirs.append(Path(__file__).resolve().parents[1] / "configs")
    return dirs


def find_preset(name: str, pipeline_dir: Path | None, origin: str) -> Path:
    if name.endswith(".toml"):
        path = Path(name).expanduser()
        if not path.is_absolute() and pipeline_dir is not None:
            path = pipeline_dir / path
        if path.is_file():
            return path
        raise RifestreamError(f"{origin}: preset: expected an existing .toml file, got {_shown(name)}")
    for folder in preset_search_dirs(pipeline_dir):
        path = folder / f"{name}.toml"
        if path.is_file():
            return path
    raise RifestreamError(
        f"{origin}: preset: expected one of {', '.join(PRESETS)} (a file configs/NAME.toml) or a path "
        f"to a .toml file, got {_shown(name)}"
    )


# ----- the resolved config ------------------------------------------------------------------------
@dataclass(frozen=True)
class SinkConfig:
    url: str
    queue: int
    codec: str | None = None
    pix_fmt: str | None = None
    crf: int | None = None
    bitrate: int | None = None
    gop: int | None = None
    options: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class PipelineConfig:
    """A checked, fully resolved pipeline: every field has its final value."""

    source_url: str
    source_realtime: bool | None  # None: the source's own default (files unpaced, live paced)
    source_options: dict[str, str]
    sinks: tuple[SinkConfig, ...]
    factor: int | None
    fps: Fraction | None
    model: str | None  # a name or a path; None = the default model
    device: str
    precision: str
    scale: float
    scene_threshold: float | None
    threads: int  # torch CPU threads; 0 = torch's default
    cupy_kernels: bool | None  # CuPy kernels on CUDA; None = the engine's default (off)
    budget_ms: float | None
    force_step: str | None
    source_queue: int
    sink_queue: int
    reconnect_initial_s: float
    reconnect_max_s: float
    stall_timeout_s: float  # a network sink that takes no data for this long is dropped and reopened
    probe_interval_s: float  # how often a lost server's port is looked at while it refuses
    start_timeout_s: float  # a source or sink that does not open within this long of the start ends the job
    metrics_enabled: bool
    metrics_port: int
    metrics_host: str
    duration: float | None
    origin: str  # where the pipeline came from, for messages and the summary

    @property
    def budget_s(self) -> float | None:
        return None if self.budget_ms is None else self.budget_ms / 1000.0


def encodes(url: str) -> bool:
    """Whether a sink URL encodes video (files, rtmp://, srt://) and so takes the ``[encoder]`` defaults."""
    return not url.startswith("zmq://") and url.strip().lower() not in ("null", "null:")


def _resolve(data: Mapping[str, Any], origin: str) -> PipelineConfig:
    source = data.get("source", {})
    if "url" not in source:
        raise _fail(origin, "source.url", "a source URL", given=False)
    latency = data.get("latency", {})
    encoder = data.get("encoder", {})
    sinks = []
    for sink in data.get("sinks", []):
        defaults = encoder if encodes(sink["url"]) else {}
        merged = merge({k: v for k, v in defaults.items() if k in ENCODER_KEYS}, sink)
        sinks.append(
            SinkConfig(
                url=merged["url"],
                queue=merged.get("queue", latency.get("sink_queue", 8)),
                codec=merged.get("codec"),
                pix_fmt=merged.get("pix_fmt"),
                crf=merged.get("crf"),
                bitrate=merged.get("bitrate"),
                gop=merged.get("gop"),
                options=dict(merged.get("options", {})),
            )
        )
    if not sinks:
        raise _fail(origin, "sinks", "at least one sink", given=False)
    rate = data.get("rate", {"factor": 2})
    model = data.get("model", {})
    engine = data.get("engine", {})
    reconnect = data.get("reconnect", {})
    metrics = data.get("metrics", {})
    initial, most = reconnect.get("initial_delay_s", 0.5), reconnect.get("max_delay_s", 10.0)
    if most < initial:
        raise RifestreamError(
            f"{origin}: reconnect.max_delay_s: expected at least initial_delay_s ({initial:g}), got {most:g}"
        )
    return PipelineConfig(
        source_url=source["url"],
        source_realtime=source.get("realtime"),
        source_options=dict(source.get("options", {})),
        sinks=tuple(sinks),
        factor=rate.get("factor"),
        fps=rate.get("fps"),
        model=model.get("path", model.get("name")),
        device=engine.get("device", "auto"),
        precision=engine.get("precision", "fp32"),
        scale=engine.get("scale", 1.0),
        scene_threshold=engine.get("scene_threshold", 0.15),
        threads=engine.get("threads", 0),
        cupy_kernels=engine.get("cupy_kernels"),
        budget_ms=latency.get("budget_ms"),
        force_step=latency.get("force_step"),
        source_queue=latency.get("source_queue", 2),
        sink_queue=latency.get("sink_queue", 8),
        reconnect_initial_s=initial,
        reconnect_max_s=most,
        stall_timeout_s=reconnect.get("stall_timeout_s", 10.0),
        probe_interval_s=reconnect.get("probe_interval_s", 0.25),
        start_timeout_s=reconnect.get("start_timeout_s", 10.0),
        metrics_enabled=metrics.get("enabled", True),
        metrics_port=metrics.get("port", 9108),
        metrics_host=metrics.get("host", "127.0.0.1"),
        duration=data.get("duration"),
        origin=origin,
    )


def _relative_model_path(layer: dict[str, Any], base: Path | None) -> dict[str, Any]:
    """A ``model.path`` in a file is relative to that file's folder."""
    path = layer.get("model", {}).get("path")
    if path is not None and base is not None and not Path(path).expanduser().is_absolute():
        layer["model"]["path"] = str(base / path)
    return layer


def _preset_layer(name: str, base: Path | None, origin: str) -> dict[str, Any]:
    path = find_preset(name, base, origin)
    preset = check_layer(read_toml(path, str(path)), str(path), preset=True)
    return _relative_model_path(preset, path.parent)


def load_config(
    path: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    *,
    overrides_origin: str = "command line",
) -> PipelineConfig:
    """The pipeline at ``path`` (None: the default job) with ``overrides`` (flags, same schema) on top.

    Layers: embedded default < preset (named by the flags, else by the file) < file < flags.
    """
    default = default_layer()
    file_layer: dict[str, Any] = {}
    origin = "default job"
    base = None
    if path is not None:
        file = Path(path)
        origin, base = str(path), file.parent  # named as the user gave it
        file_layer = _relative_model_path(check_layer(read_toml(file, origin), origin), base)
    flag_layer = check_layer(overrides, overrides_origin) if overrides else {}
    data = default
    if "preset" in flag_layer:
        data = merge(data, _preset_layer(flag_layer["preset"], None, overrides_origin))
    elif "preset" in file_layer:
        data = merge(data, _preset_layer(file_layer["preset"], base, origin))
    data = merge(merge(data, file_layer), flag_layer)
    data.pop("preset", None)
    own_duration = "duration" in file_layer or "duration" in flag_layer
    if not own_duration and data["source"]["url"] != default["source"]["url"]:
        data.pop("duration", None)  # the default's 10 s belong to its test scene
    return _resolve(data, origin)
