"""The pipeline config: one model, every key's kind and default declared once, below.

Layers, lowest first (a higher layer's keys replace a lower one's):

1. the model's defaults: the built-in moving test scene at 30 fps → 60 fps, written
   to a file, metrics on port 9108, for 10 seconds;
2. the preset named by ``preset = "low-latency" | "balanced" | "quality"`` (a file
   ``configs/NAME.toml``, or a path to a ``.toml`` file) — engine, latency, model,
   rate, encoder and reconnect settings only;
3. the pipeline file itself (or, in a fleet file, its ``[defaults]`` and then the stream's table);
4. command-line flags.

Tables merge key by key, except ``rate`` (``factor`` or ``fps``) and ``model``
(``name`` or ``path``), which a higher layer replaces whole, and ``sinks``, a list
a higher layer replaces whole. The default ``duration`` belongs to the test scene:
once a layer names another source, the stream runs until stopped unless a layer
sets a ``duration`` itself. A ``model.path`` is relative to the file that names it.

Each layer is checked on its own by the same model (so an error names the file the
bad key is in) and kept as the keys it set; the merged layers are then checked once
more, as a whole, into the resolved :class:`PipelineConfig`.

Adding a key is one line in its table's class below (kind, default, comment) plus its test.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass as std_dataclass
from dataclasses import field
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.dataclasses import dataclass

from rifestream.config.errors import broken_rule, field_at, one_line, shown
from rifestream.config.files import find_preset, read_toml
from rifestream.config.values import (
    EXPECTED,
    Bitrate,
    Codec,
    Device,
    Duration,
    Flag,
    FrameRate,
    Host,
    Options,
    PixFmt,
    Positive,
    Scale,
    SceneThreshold,
    Seconds,
    SinkUrl,
    SourceUrl,
    Text,
    number_from,
    one_of,
    refuse,
    whole,
)
from rifestream.errors import RifestreamError
from rifestream.io.registry import sink_kind

LADDER_STEPS = ("model", "scale", "classical", "blend", "repeat")
REPLACED_WHOLE = ("rate", "model", "sinks")
# Keys a preset may set: settings of the engine and the encoders, never the job's own ends.
PRESET_KEYS = ("rate", "model", "engine", "latency", "encoder", "reconnect")
# Validation context of one layer: cross-key rules and defaults between tables wait for the merged whole.
LAYER = {"layer": True}

Queue = whole(1, 1000)
Crf = whole(0, 63)
Gop = whole(1, 100_000)


class Table(BaseModel):
    """A table of a config file: unknown keys are errors, and a checked table is not changed afterwards."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class SourceSettings(Table):
    # file, rtsp://, rtmp://, srt://, capture:..., testsrc:..., zmq://...; the default: the built-in
    # moving test scene, paced like a camera
    url: SourceUrl = "testsrc:?size=640x360&fps=30"
    # pace a file to its frame rate (a stand-in for a live input); None: files unpaced, live inputs
    # and the test scene at their own pace
    realtime: Flag | None = None
    options: Options = {}  # FFmpeg demuxer/protocol options, e.g. { rtsp_transport = "tcp" }


@dataclass(frozen=True, config=ConfigDict(extra="forbid"))
class SinkSpec:
    """One output and its encoder settings (sinks that do not encode ignore them).

    ``[[sinks]]`` in a pipeline file, and what the runner opens. Encoding sinks (files, rtmp://)
    take ``[encoder]``'s values for the keys they leave out; ``queue`` is ``latency.sink_queue``
    unless set.
    """

    url: SinkUrl = Field(description="a sink URL (a file path, rtmp://…, zmq://HOST:PORT or null)")
    queue: Queue | None = None  # frames; None: the runner's sink_queue
    codec: Codec | None = None  # "auto": h264_nvenc where it opens, else libx264 (veryfast)
    pix_fmt: PixFmt | None = None  # the feed's pixel format (rgb24, bgr24, gray, yuv420p) or the encoder's
    crf: Crf | None = None
    bitrate: Bitrate | None = None  # bits per second, or "4M", "800k"
    gop: Gop | None = None
    options: Options = field(default_factory=dict)  # FFmpeg codec options; "preset" = speed preset


class EncoderSettings(Table):
    """Defaults for every encoding sink (presets set these)."""

    codec: Codec | None = None  # None: h264_nvenc where it opens, else libx264 (veryfast)
    pix_fmt: PixFmt | None = None
    crf: Crf | None = 23
    bitrate: Bitrate | None = None
    gop: Gop | None = None
    options: Options = {}


class RateSettings(Table):
    """The output rate: ``factor`` output frames per input frame, or a fixed ``fps`` (one of them)."""

    factor: whole(1, 1000) | None = 2  # 2: 30 fps → 60 fps
    fps: FrameRate | None = None  # e.g. 60, 59.94 or "30000/1001"

    @model_validator(mode="before")
    @classmethod
    def _one_of_factor_or_fps(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("fps") is not None:
            if data.get("factor") is not None:
                raise broken_rule("expected either factor or fps, got both")
            data = {**data, "factor": None}
        return data


class ModelSettings(Table):
    """The model: a ``name`` (``rifestream models list``) or a weights file ``path``; neither: the default."""

    name: Text | None = None
    path: Text | None = None  # relative to the file that names it

    @model_validator(mode="before")
    @classmethod
    def _one_of_name_or_path(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("name") is not None and data.get("path") is not None:
            raise broken_rule("expected either name or path, got both")
        return data

    @property
    def ref(self) -> str | None:
        """The name or path the engine loads; None: the default model for the device."""
        return self.path or self.name


class EngineSettings(Table):
    device: Device = "auto"  # auto (CUDA when present, else the CPU), cpu, cuda, cuda:N
    precision: one_of("fp32", "fp16") = "fp32"  # fp16: CUDA
    scale: Scale = 1.0  # the flow's scale: 0.25, 0.5, 1, 2 or 4 (0.5 for 4K)
    scene_threshold: SceneThreshold = 0.15  # a scene-cut score above this repeats frame0; false: off
    threads: whole(0, 256) = 0  # torch CPU threads; 0: torch's default (1 when no model is loaded)
    cupy_kernels: Flag | None = None  # CUDA: CuPy warp + colour kernels; None: the engine's default (off)


class LatencySettings(Table):
    budget_ms: Positive = 25.0  # from a frame's arrival until the frames it completes are made
    force_step: one_of(*LADDER_STEPS) | None = None  # pin one ladder step (blend: the pipeline's own cost)
    source_queue: Queue = 2  # frames waiting for the engine (a live source drops the oldest)
    sink_queue: Queue = 8  # frames waiting for each sink (a slow sink drops the oldest)

    @property
    def budget_s(self) -> float:
        return self.budget_ms / 1000.0


class ReconnectSettings(Table):
    initial_delay_s: Seconds = 0.5  # first retry delay; doubled per failure …
    max_delay_s: Seconds = 10.0  # … up to this
    stall_timeout_s: Seconds = 10.0  # a network sink whose server takes no data this long is reopened
    # while a lost server's port refuses, look at it this often; reopen when it accepts
    probe_interval_s: number_from(0.05, 5.0) = 0.25
    start_timeout_s: Seconds = 10.0  # a source or sink not open this long after the start ends the job (exit 2)


class MetricsSettings(Table):
    enabled: Flag = True
    port: whole(0, 65535) = 9108  # 0 picks a free port
    host: Host = "127.0.0.1"


class PipelineConfig(Table):
    """A pipeline: as one layer (every key optional), and resolved (every key with its final value)."""

    preset: Text | None = None  # configs/NAME.toml (or a .toml path) merged under this layer
    duration: Duration = 10.0  # seconds, then stop cleanly; None (false): until stopped
    source: SourceSettings = SourceSettings()
    encoder: EncoderSettings = EncoderSettings()
    rate: RateSettings = RateSettings()
    model: ModelSettings = ModelSettings()
    engine: EngineSettings = EngineSettings()
    latency: LatencySettings = LatencySettings()
    reconnect: ReconnectSettings = ReconnectSettings()
    metrics: MetricsSettings = MetricsSettings()
    # [[sinks]] tables (or sinks = ["out.mp4", "zmq://127.0.0.1:5555"]); last, as they take the
    # encoder's and the latency table's values
    sinks: tuple[SinkSpec, ...] = Field((SinkSpec("rifestream-default.mp4"),), validate_default=True)

    @field_validator("sinks", mode="before")
    @classmethod
    def _a_list_of_sinks(cls, value: Any) -> Any:
        if not isinstance(value, list | tuple) or not value:
            raise refuse('a non-empty list of sinks, e.g. [[sinks]] url = "out.mp4"')
        return [{"url": item} if isinstance(item, str) else item for item in value]

    @field_validator("sinks")
    @classmethod
    def _with_encoder_defaults_and_queue(cls, sinks: tuple[SinkSpec, ...], info: ValidationInfo) -> Any:
        """Encoding sinks take ``[encoder]``'s value of each key they leave out; a sink's queue is
        ``latency.sink_queue`` unless set (once the layers are merged)."""
        encoder, latency = info.data.get("encoder"), info.data.get("latency")
        if info.context == LAYER or encoder is None or latency is None:
            return sinks
        return tuple(_resolved_sink(sink, encoder, latency.sink_queue) for sink in sinks)

    @model_validator(mode="after")
    def _delays_in_order(self, info: ValidationInfo) -> PipelineConfig:
        initial, most = self.reconnect.initial_delay_s, self.reconnect.max_delay_s
        if info.context != LAYER and most < initial:
            raise broken_rule(f"expected at least initial_delay_s ({initial:g}), got {most:g}", "reconnect.max_delay_s")
        return self


def _resolved_sink(sink: SinkSpec, encoder: EncoderSettings, queue: int) -> SinkSpec:
    values = {key: getattr(sink, key) for key in sink.__pydantic_fields__}
    if sink_kind(sink.url).encodes:
        for key in EncoderSettings.model_fields:
            if values[key] is None:
                values[key] = getattr(encoder, key)
        values["options"] = {**encoder.options, **sink.options}
    if values["queue"] is None:
        values["queue"] = queue
    return SinkSpec(**values)


DEFAULT_SOURCE = SourceSettings.model_fields["url"].default


# ----- layers ----------------------------------------------------------------------------------------
def check_layer(
    data: Mapping[str, Any], origin: str, *, preset: bool = False, prefix: str = "", base: Path | None = None
) -> dict[str, Any]:
    """One layer checked and normalised (e.g. "4M" → 4000000), as the keys it sets.

    Errors are one line naming ``origin`` and the key (after ``prefix``, e.g. ``streams[2].``);
    a ``model.path`` is made relative to ``base`` (the folder of the file that names it).
    """
    if not isinstance(data, Mapping):
        raise RifestreamError(f"{origin}: {prefix.rstrip('.') or 'pipeline'}: expected a table, got {shown(data)}")
    try:
        layer = PipelineConfig.model_validate(dict(data), context=LAYER).model_dump(exclude_unset=True)
    except ValidationError as exc:
        raise one_line(exc, origin, PipelineConfig, prefix) from None
    if preset:
        for key in layer:
            if key not in PRESET_KEYS:
                raise RifestreamError(f"{origin}: {prefix}{key}: a preset may only set {', '.join(PRESET_KEYS)}")
    path = layer.get("model", {}).get("path")
    if path is not None and base is not None and not Path(path).expanduser().is_absolute():
        layer["model"]["path"] = str(base / path)
    return layer


def merge(lower: Mapping[str, Any], higher: Mapping[str, Any]) -> dict[str, Any]:
    """``higher`` over ``lower``: tables key by key (options too), rate/model/sinks replaced whole."""
    out = copy.deepcopy(dict(lower))
    for key, value in higher.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict) and key not in REPLACED_WHOLE:
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


@std_dataclass(frozen=True)
class Layer:
    """A checked layer: the keys it sets, where it came from (``origin``, ``prefix``) and the folder
    its relative paths start from."""

    keys: dict[str, Any]
    origin: str
    base: Path | None = None
    prefix: str = ""


def _preset_layer(named_by: Layer) -> Layer:
    where = find_preset(named_by.keys["preset"], named_by.base, named_by.origin, f"{named_by.prefix}preset")
    keys = check_layer(read_toml(where, str(where)), str(where), preset=True, base=where.parent)
    return Layer(keys, str(where), where.parent)


def resolve(layers: list[Layer], origin: str, prefix: str = "") -> PipelineConfig:
    """Checked layers, lowest first, over the defaults and the preset that the highest layer naming
    one names: the resolved pipeline (an error across keys names ``origin`` and ``prefix``)."""
    named = [layer for layer in layers if "preset" in layer.keys]
    data = _preset_layer(named[-1]).keys if named else {}
    for layer in layers:
        data = merge(data, layer.keys)
    data.pop("preset", None)
    if "duration" not in data and data.get("source", {}).get("url", DEFAULT_SOURCE) != DEFAULT_SOURCE:
        data["duration"] = None  # the default's 10 s belong to its test scene
    try:
        return PipelineConfig.model_validate(data)
    except ValidationError as exc:
        raise one_line(exc, origin, PipelineConfig, prefix) from None


def load_config(
    path: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    *,
    overrides_origin: str = "command line",
) -> PipelineConfig:
    """The pipeline at ``path`` (None: the default job) with ``overrides`` (flags, same keys) on top.

    Layers: defaults < preset (named by the flags, else by the file) < file < flags.
    """
    layers = []
    origin = "default job"
    if path is not None:
        origin, base = str(path), Path(path).parent  # named as the user gave it
        layers.append(Layer(check_layer(read_toml(Path(path), origin), origin, base=base), origin, base))
    if overrides:
        layers.append(Layer(check_layer(overrides, overrides_origin), overrides_origin))
    return resolve(layers, origin)


def validate_pipeline(
    data: Mapping[str, Any],
    origin: str,
    *,
    prefix: str = "",
    base: Path | None = None,
    under: Layer | None = None,
) -> PipelineConfig:
    """One pipeline given as a table (a fleet file's stream), resolved as :func:`load_config` resolves a file.

    ``origin``: the file it is in; ``prefix``: its place there, written before each key in errors
    (``streams[2].`` → ``FILE: streams[2].sinks[0].url: expected …, got …``); ``base``: the folder
    that presets and ``model.path`` are relative to; ``under``: a checked layer this one is merged
    over (a fleet's ``[defaults]``).
    """
    layer = Layer(check_layer(data, origin, prefix=prefix, base=base), origin, base, prefix)
    return resolve([layer] if under is None else [under, layer], origin, prefix)


# ----- one setting, for commands that take it as a flag ---------------------------------------------
def check_value(key: str, value: Any, name: str) -> Any:
    """One setting (``key`` dotted, e.g. ``engine.device``, ``sinks.url``) checked by the pipeline model's
    rule for it, for commands that take it as a flag or argument ``name``: ``NAME: expected …, got …``."""
    info = field_at(PipelineConfig, tuple(key.split(".")))
    if info is None:
        raise KeyError(key)
    annotation = info.annotation if not info.metadata else _annotated(info.annotation, info.metadata)
    try:
        return TypeAdapter(annotation).validate_python(value)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        words = first["ctx"]["expected"] if first["type"] == EXPECTED else first["msg"]
        raise RifestreamError(f"{name}: expected {words}, got {shown(value)}") from None


def _annotated(annotation: Any, metadata: list[Any]) -> Any:
    return Annotated[(annotation, *metadata)]
