"""Reading config files: TOML, and where a preset named in a pipeline is found."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from rifestream.config.errors import shown
from rifestream.errors import RifestreamError

PRESETS = ("low-latency", "balanced", "quality")


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


def preset_search_dirs(pipeline_dir: Path | None) -> list[Path]:
    """Where ``preset = NAME`` is looked up: next to the pipeline (``configs/``, ``../configs/``),
    the working directory's ``configs/``, and the checkout's ``configs/``."""
    dirs = []
    if pipeline_dir is not None:
        dirs += [pipeline_dir / "configs", pipeline_dir.parent / "configs", pipeline_dir]
    dirs.append(Path.cwd() / "configs")
    dirs.append(Path(__file__).resolve().parents[2] / "configs")
    return dirs


def find_preset(name: str, pipeline_dir: Path | None, origin: str, key: str = "preset") -> Path:
    """The file of ``preset = NAME`` (a name in the search folders, or a path to a .toml file)."""
    if name.endswith(".toml"):
        path = Path(name).expanduser()
        if not path.is_absolute() and pipeline_dir is not None:
            path = pipeline_dir / path
        if path.is_file():
            return path
        raise RifestreamError(f"{origin}: {key}: expected an existing .toml file, got {shown(name)}")
    for folder in preset_search_dirs(pipeline_dir):
        path = folder / f"{name}.toml"
        if path.is_file():
            return path
    raise RifestreamError(
        f"{origin}: {key}: expected one of {', '.join(PRESETS)} (a file configs/NAME.toml) or a path "
        f"to a .toml file, got {shown(name)}"
    )
