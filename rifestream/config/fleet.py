"""A fleet file: several pipelines, run together, each one a ``[[streams]]`` table.

::

    [defaults]                 # optional: any pipeline keys, under every stream (tables merge key by key)
    preset = "balanced"
    [defaults.engine]
    device = "cuda"

    [[streams]]
    name = "cam-1"             # unique; lower-case letters, digits, _ and -
    source = { url = "rtsp://cam1.local/stream" }
    sinks = ["rtmp://ingest/live/cam1"]

    [[streams]]
    name = "cam-2"
    ...

Each stream resolves as a pipeline file would (:mod:`rifestream.config.pipeline`), with the
fleet's ``[defaults]`` as a layer between its preset and its own keys. Errors name the stream
by its place: ``FILE: streams[2].sinks[0].url: expected …, got …``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator

from rifestream.config.errors import one_line, shown
from rifestream.config.files import read_toml
from rifestream.config.pipeline import Layer, PipelineConfig, check_layer, validate_pipeline
from rifestream.config.values import expect, refuse
from rifestream.errors import RifestreamError

StreamName = Annotated[
    str,
    Field(strict=True, pattern=r"^[a-z0-9_-]+$", max_length=64),
    expect('a stream name of lower-case letters, digits, _ and - (at most 64), e.g. "cam-1"'),
]


class FleetFile(BaseModel):
    """The fleet file as written: the pipelines' own keys are checked by the pipeline model."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    defaults: dict[str, Any] = {}
    streams: tuple[dict[str, Any], ...] = Field(description="one [[streams]] table per pipeline, each with a name")

    @field_validator("streams", mode="before")
    @classmethod
    def _a_list_of_streams(cls, value: Any) -> Any:
        if not isinstance(value, list | tuple) or not value:
            raise refuse('a non-empty list of streams, e.g. [[streams]] name = "cam-1"')
        return value


class FleetStream(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: StreamName
    pipeline: PipelineConfig


class FleetConfig(BaseModel):
    """A checked fleet: its streams in file order, each a resolved pipeline."""

    model_config = ConfigDict(frozen=True)

    origin: str  # the file, as the user named it (for messages)
    streams: tuple[FleetStream, ...]

    def stream(self, name: str) -> PipelineConfig:
        return next(s.pipeline for s in self.streams if s.name == name)


_NAME = TypeAdapter(StreamName)


def validate_fleet(data: dict[str, Any], origin: str, base: Path | None = None) -> FleetConfig:
    """A fleet given as a table (a parsed fleet file ``origin``; ``base``: the folder its paths start from)."""
    try:
        fleet = FleetFile.model_validate(data)
    except ValidationError as exc:
        raise one_line(exc, origin, FleetFile) from None
    defaults = Layer(check_layer(fleet.defaults, origin, prefix="defaults.", base=base), origin, base, "defaults.")
    streams: list[FleetStream] = []
    for i, table in enumerate(fleet.streams):
        where = f"streams[{i}]."
        own = dict(table)
        if "name" not in own:
            raise RifestreamError(f"{origin}: {where}name: expected a stream name, unique in this file")
        name = own.pop("name")
        try:
            name = _NAME.validate_python(name)
        except ValidationError as exc:
            raise one_line(exc, origin, FleetStream, f"{where}name") from None
        if any(s.name == name for s in streams):
            raise RifestreamError(f"{origin}: {where}name: expected a name no other stream has, got {shown(name)}")
        for key, words in (
            ("source", "source.url: expected a source URL"),
            ("sinks", "sinks: expected a list of sinks"),
        ):
            if not (_sets(own, key) or _sets(fleet.defaults, key)):
                raise RifestreamError(f"{origin}: {where}{words}; each stream names its own (or [defaults] does)")
        pipeline = validate_pipeline(own, origin, prefix=where, base=base, under=defaults)
        streams.append(FleetStream(name=name, pipeline=pipeline))
    return FleetConfig(origin=origin, streams=tuple(streams))


def _sets(table: dict[str, Any], key: str) -> bool:
    """Whether a stream's table (or the defaults) names its ``source`` URL or its ``sinks``."""
    value = table.get(key)
    return isinstance(value, dict) and "url" in value if key == "source" else value is not None


def load_fleet(path: str | Path) -> FleetConfig:
    """The fleet file at ``path``; every stream checked and resolved before anything runs."""
    origin = str(path)
    return validate_fleet(read_toml(Path(path), origin), origin, Path(path).parent)
