"""Training configuration: one flat dataclass, read from a TOML file with [model], [data] and [train] tables."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from rifestream.errors import RifestreamError
from rifestream.model.bilateral import WINDOW
from rifestream.model.ifnet import IFNetConfig


def no_such_block(given: str, blocks: int) -> RifestreamError:
    """The error for a block index outside a model of ``blocks`` blocks; ``given`` names what was asked."""
    return RifestreamError(f"{given}: the model has blocks 0 to {blocks - 1} (0 is the coarsest)")


@dataclass
class TrainConfig:
    # [model]
    name: str = "rifestream-v1"
    channels: tuple[int, ...] = (192, 128, 64, 32)
    scales: tuple[float, ...] = (8, 4, 2, 1)
    head: bool = True
    pad: int = 32
    search_radius: int = 0
    search_level: int = 2
    search_window: int = WINDOW
    search_subcell: bool = False
    teacher_channels: int = 64
    # [data]
    clips_dir: str = ""
    train_clips: list[str] = field(default_factory=list)
    val_clips: list[str] = field(default_factory=list)
    gaps: tuple[int, ...] = (1, 2, 3)
    synthetic_share: float = 0.5
    synthetic_max_motion: float = 80.0
    crop: int = 160
    min_downscale: float = 0.5
    # [train]
    steps: int = 10000
    batch: int = 8
    lr: float = 4e-4
    min_lr: float = 2e-5
    warmup: int = 300
    weight_decay: float = 1e-4
    flow_weight: float = 0.01
    # Student blocks (0 = coarsest) whose flow the synthetic scenes' true flow supervises
    # (default: every block but the coarsest).
    flow_blocks: tuple[int, ...] | None = None
    # Of those, the blocks whose term is the squared error (px^2) instead of L1: under L1 a coarse
    # block that cannot yet tell scenes apart stays at the median flow, no motion; a squared error
    # pulls it towards the mean (docs/MODEL_CARD.md, "The coarse block alone").
    flow_squared_blocks: tuple[int, ...] = ()
    distill_weight: float = 0.01
    grad_clip: float = 1.0
    # Per student block (0 = coarsest): a multiplier of the learning rate, and Adam's epsilon
    # (empty: 1 and 1e-8 for every block). What they do to the coarse blocks is measured in
    # docs/MODEL_CARD.md, "Restarting the coarse blocks".
    block_lr_scale: tuple[float, ...] = ()
    block_adam_eps: tuple[float, ...] = ()
    # The same multiplier for the feature head (0 freezes it: a coarse block trained on its
    # features, as scripts/studies/coarse_block_study.py's ``alone`` does, needs them to stay as they were).
    head_lr_scale: float = 1.0
    seed: int = 0
    checkpoint_minutes: float = 5.0
    val_every: int = 500
    log_every: int = 50

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
    def from_dict(cls, data: dict) -> TrainConfig:
        known = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise RifestreamError(f"unknown training setting(s) {', '.join(unknown)}; known: {', '.join(known)}")
        values = {}
        for key, value in data.items():
            if isinstance(value, list) and key not in ("train_clips", "val_clips"):  # the rest are tuples
                value = tuple(value)
            values[key] = value
        return cls(**values)


CHECKOUT_CONFIG = Path("configs/train/default.toml")


def default_config() -> TrainConfig:
    """The shipped model's recipe when run in a checkout (configs/train/default.toml), else the built-in settings.

    The built-in settings are the same recipe for one process (batch 8) with no clips named: an
    installed package has no copy of the shared clips, so the caller names its own videos.
    """
    return load_config(CHECKOUT_CONFIG) if CHECKOUT_CONFIG.is_file() else TrainConfig()


def read_settings(path: str | Path) -> dict:
    """A training TOML file's [model], [data] and [train] tables merged into one flat dict; a
    relative ``clips_dir`` is made relative to the file."""
    import tomllib

    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError as exc:
        raise RifestreamError(f"{path}: no such training config; see configs/train/default.toml") from exc
    except tomllib.TOMLDecodeError as exc:
        raise RifestreamError(f"{path}: invalid TOML ({exc})") from exc
    flat: dict = {}
    for table in data.values():
        if not isinstance(table, dict):
            raise RifestreamError(f"{path}: settings belong in the [model], [data] or [train] tables")
        flat.update(table)
    if flat.get("clips_dir") and not Path(flat["clips_dir"]).is_absolute():
        flat["clips_dir"] = str((path.parent / flat["clips_dir"]).resolve())
    return flat


def load_config(path: str | Path) -> TrainConfig:
    """Read a training TOML file; its tables ([model], [data], [train]) are merged into one TrainConfig."""
    return TrainConfig.from_dict(read_settings(path))
