"""Training configuration: one flat pydantic dataclass per model family, read from a TOML file with
[model], [data] and [train] tables (``[model] family = "lite"`` picks the CPU model's, ``train/lite.py``).

Each setting's kind and default are declared once, on the class; a file's bad value is one line,
``FILE: train.steps: expected a whole number ≥ 1, got 0``, as in a pipeline file. The [model]
table's shape (widths, scales, search grid) is the model's own config's to check (``IFNetConfig``).
"""

from __future__ import annotations

import dataclasses
import tomllib
import typing
from dataclasses import field
from pathlib import Path
from typing import Any, TypeVar

from pydantic import ConfigDict, SkipValidation, ValidationError
from pydantic.dataclasses import dataclass

from rifestream.config.errors import one_line
from rifestream.config.values import Positive, Text, number_from, whole
from rifestream.errors import RifestreamError
from rifestream.model.bilateral import WINDOW
from rifestream.model.ifnet import IFNetConfig

# The config of every training settings class: unknown settings are errors, and types are strict
# (a TOML list is turned into a tuple where the setting is one, as the file cannot write tuples).
TRAINING = ConfigDict(extra="forbid", strict=True)
FAMILY = "family"  # [model] family = "lite": which settings class reads the file (cli/train.py)


def no_such_block(given: str, blocks: int) -> RifestreamError:
    """The error for a block index outside a model of ``blocks`` blocks; ``given`` names what was asked."""
    return RifestreamError(f"{given}: the model has blocks 0 to {blocks - 1} (0 is the coarsest)")


@dataclass(config=TRAINING)
class TrainConfig:
    # [model]
    name: Text = "rifestream-v1"
    channels: tuple[int, ...] = (192, 128, 64, 32)
    scales: tuple[float, ...] = (8, 4, 2, 1)
    head: bool = True
    pad: int = 32
    search_radius: int = 0
    search_level: int = 2
    search_window: int = WINDOW
    search_subcell: SkipValidation[bool] = False  # IFNetConfig's to check (its words are pinned by tests)
    teacher_channels: whole(1) = 64
    # [data]
    clips_dir: str = ""
    train_clips: list[str] = field(default_factory=list)
    val_clips: list[str] = field(default_factory=list)
    gaps: tuple[int, ...] = (1, 2, 3)
    synthetic_share: number_from(0, 1) = 0.5
    synthetic_max_motion: float = 80.0
    crop: whole(16) = 160
    min_downscale: float = 0.5
    # [train]
    steps: whole(1) = 10000
    batch: whole(1) = 8
    lr: Positive = 4e-4
    min_lr: float = 2e-5
    warmup: whole(0) = 300
    weight_decay: float = 1e-4
    flow_weight: float = 0.01
    # Student blocks (0 = coarsest) whose flow the synthetic scenes' true flow supervises
    # (default: every block but the coarsest).
    flow_blocks: tuple[int, ...] | None = None
    # Of those, the blocks whose term is the squared error (px^2) instead of L1: under L1 a coarse
    # block that cannot yet tell scenes apart stays at the median flow, no motion; a squared error
    # pulls it towards the mean (docs/MODEL_HISTORY.md, "The coarse block alone").
    flow_squared_blocks: tuple[int, ...] = ()
    distill_weight: float = 0.01
    grad_clip: float = 1.0
    # Per student block (0 = coarsest): a multiplier of the learning rate, and Adam's epsilon
    # (empty: 1 and 1e-8 for every block). What they do to the coarse blocks is measured in
    # docs/MODEL_HISTORY.md, "Restarting the coarse blocks".
    block_lr_scale: tuple[float, ...] = ()
    block_adam_eps: tuple[float, ...] = ()
    # The same multiplier for the feature head (0 freezes it: a coarse block trained on its
    # features, as scripts/studies/coarse_block_study.py's ``alone`` does, needs them to stay as they were).
    head_lr_scale: float = 1.0
    seed: int = 0
    checkpoint_minutes: Positive = 5.0
    val_every: whole(0) = 500  # 0: no validation
    log_every: whole(1) = 50

    def __post_init__(self) -> None:
        if self.flow_blocks is None:
            self.flow_blocks = tuple(range(1, len(self.channels)))
        bad = [b for b in self.flow_blocks if not 0 <= b < len(self.channels)]
        if bad:
            raise no_such_block(f"flow_blocks {bad}", len(self.channels))
        unsupervised = [b for b in self.flow_squared_blocks if b not in self.flow_blocks]
        if unsupervised:
            raise RifestreamError(
                f"flow_squared_blocks {unsupervised} are not in flow_blocks {list(self.flow_blocks)}: "
                "add them there, or the true flow does not supervise them at all"
            )
        for name in ("block_lr_scale", "block_adam_eps"):
            values = getattr(self, name)
            if values and len(values) != len(self.channels):
                raise RifestreamError(
                    f"{name} has {len(values)} values; give one per block ({len(self.channels)}) or none"
                )
        try:
            self.model_config()  # the [model] table's own checks (widths, scales, search grid)
        except ValueError as exc:
            raise RifestreamError(f"[model] settings: {exc}") from exc

    def model_config(self) -> IFNetConfig:
        return IFNetConfig(
            self.name,
            tuple(self.channels),
            tuple(float(s) for s in self.scales),
            self.head,
            self.pad,
            self.search_radius,
            self.search_level,
            self.search_window,
            self.search_subcell,
        )

    def clip_paths(self, names: list[str]) -> list[Path]:
        base = Path(self.clips_dir) if self.clips_dir else Path()
        return [base / n for n in names]

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict, origin: str = "training settings") -> TrainConfig:
        return settings_from(cls, data, origin)


Settings = TypeVar("Settings")


def _tuple_fields(cls: type) -> set[str]:
    """The settings of ``cls`` that are tuples (a TOML file writes them as lists)."""
    hints = typing.get_type_hints(cls, include_extras=False)
    return {
        name
        for name, hint in hints.items()
        if typing.get_origin(hint) is tuple or any(typing.get_origin(a) is tuple for a in typing.get_args(hint))
    }


def settings_from(
    cls: type[Settings], data: dict[str, Any], origin: str, tables: dict[str, str] | None = None
) -> Settings:
    """``cls`` (a pydantic settings dataclass) from flat settings; a bad one is ``ORIGIN: TABLE.KEY: expected …, got …``
    (``tables``: the table each key was read from, for the message)."""
    tuples = _tuple_fields(cls)
    values = {k: tuple(v) if k in tuples and isinstance(v, list) else v for k, v in data.items()}
    try:
        return cls(**values)
    except ValidationError as exc:
        key = exc.errors()[0]["loc"][0] if exc.errors()[0]["loc"] else None
        prefix = f"{tables[key]}." if tables and key in tables else ""
        raise one_line(exc, origin, cls, prefix) from None
    except RifestreamError as exc:  # a check across settings (__post_init__): name the file too
        raise RifestreamError(f"{origin}: {exc}") from None


CHECKOUT_CONFIG = Path("configs/train/default.toml")


def default_config() -> TrainConfig:
    """The shipped model's recipe when run in a checkout (configs/train/default.toml), else the built-in settings.

    The built-in settings are the same recipe for one process (batch 8) with no clips named: an
    installed package has no copy of the shared clips, so the caller names its own videos.
    """
    return load_config(CHECKOUT_CONFIG) if CHECKOUT_CONFIG.is_file() else TrainConfig()


def replaced(settings: Settings, changes: dict[str, Any], origin: str = "command line") -> Settings:
    """``settings`` with ``changes`` (e.g. from flags), checked as a file's values are."""
    current = {f.name: getattr(settings, f.name) for f in dataclasses.fields(settings)}
    return settings_from(type(settings), {**current, **changes}, origin)


def read_tables(path: str | Path) -> tuple[dict[str, Any], dict[str, str]]:
    """A training TOML file's [model], [data] and [train] tables merged into one flat dict, and the
    table each setting was read from; a relative ``clips_dir`` is made relative to the file."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError as exc:
        raise RifestreamError(f"{path}: no such training config; see configs/train/default.toml") from exc
    except tomllib.TOMLDecodeError as exc:
        raise RifestreamError(f"{path}: invalid TOML ({exc})") from exc
    flat: dict[str, Any] = {}
    tables: dict[str, str] = {}
    for name, table in data.items():
        if not isinstance(table, dict):
            raise RifestreamError(f"{path}: settings belong in the [model], [data] or [train] tables")
        flat.update(table)
        tables.update(dict.fromkeys(table, name))
    if flat.get("clips_dir") and not Path(flat["clips_dir"]).is_absolute():
        flat["clips_dir"] = str((path.parent / flat["clips_dir"]).resolve())
    return flat, tables


def read_settings(path: str | Path) -> dict[str, Any]:
    """A training TOML file's settings as one flat dict (see :func:`read_tables`), unchecked."""
    return read_tables(path)[0]


def load_settings(cls: type[Settings], path: str | Path) -> Settings:
    """A training TOML file read into the settings class ``cls`` (its ``family`` picked the class)."""
    flat, tables = read_tables(path)
    flat.pop(FAMILY, None)
    return settings_from(cls, flat, str(path), tables)


def load_config(path: str | Path) -> TrainConfig:
    """Read a training TOML file; its tables ([model], [data], [train]) are merged into one TrainConfig."""
    return load_settings(TrainConfig, path)
