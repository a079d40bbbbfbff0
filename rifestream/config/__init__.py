"""The config files (pipelines, fleets, presets), each checked by one pydantic model.

A bad key or value is one line, ``FILE: key: expected …, got …``; see
:mod:`rifestream.config.pipeline` for the pipeline's keys, layers and defaults, and
:mod:`rifestream.config.fleet` for a fleet of pipelines.
"""

from rifestream.config.files import PRESETS, find_preset, read_toml
from rifestream.config.fleet import FleetConfig, FleetStream, load_fleet, validate_fleet
from rifestream.config.pipeline import (
    LADDER_STEPS,
    EncoderSettings,
    EngineSettings,
    LatencySettings,
    Layer,
    MetricsSettings,
    ModelSettings,
    PipelineConfig,
    RateSettings,
    ReconnectSettings,
    SinkSpec,
    SourceSettings,
    check_layer,
    check_value,
    load_config,
    merge,
    resolve,
    validate_pipeline,
)

__all__ = [
    "LADDER_STEPS",
    "PRESETS",
    "EncoderSettings",
    "FleetConfig",
    "FleetStream",
    "EngineSettings",
    "LatencySettings",
    "Layer",
    "MetricsSettings",
    "ModelSettings",
    "PipelineConfig",
    "RateSettings",
    "ReconnectSettings",
    "SinkSpec",
    "SourceSettings",
    "check_layer",
    "check_value",
    "find_preset",
    "load_config",
    "load_fleet",
    "merge",
    "read_toml",
    "resolve",
    "validate_fleet",
    "validate_pipeline",
]
