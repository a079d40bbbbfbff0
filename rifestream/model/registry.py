"""Which model a name means, where its file lives, and how an official checkpoint is fetched.

Three kinds of model:

* a path to a weights file (official ``flownet.pkl`` or a rifestream ``.safetensors``);
* a *shipped* model, a ``.safetensors`` file packaged under ``rifestream/weights/``
  (the default is ``rifestream-v7``; ``rifestream-v1`` is the faster one without a block-matching
  prior; ``rifestream-lite`` is the CPU model);
* an *official* RIFE v4 checkpoint by name (``v4.6``, ``v4.25`` …), downloaded once
  into the cache directory with its sha256 checked.

The cache directory is ``$RIFESTREAM_HOME/models`` when ``RIFESTREAM_HOME`` is set,
else ``$XDG_CACHE_HOME/rifestream/models`` (default ``~/.cache/rifestream/models``).
``RIFESTREAM_MODEL_BASE_URL`` replaces the download host of every official entry
(``BASE/flownet_v4.6.pkl``), e.g. for a mirror; the sha256 pins still apply.

A download goes to a temporary file in the cache directory and is renamed to its
final name only after its size and sha256 match, so a cached file is always whole.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import BinaryIO

from rifestream import __version__
from rifestream.errors import RifestreamError
from rifestream.model.checkpoint import arch_from_metadata
from rifestream.model.ifnet import OFFICIAL_ARCHS, IFNetConfig
from rifestream.model.lite import LiteConfig

HOME_ENV = "RIFESTREAM_HOME"
BASE_URL_ENV = "RIFESTREAM_MODEL_BASE_URL"
DEFAULT_MODEL = "rifestream-v7"
# What a live job runs on a CPU when no model is named: the full model is 11-30x over a
# 640x360 30->60 budget on 2 cores, the CPU model fits it (docs/BENCHMARKS.md).
DEFAULT_CPU_MODEL = "rifestream-lite"
OFFICIAL_BASE_URL = "https://github.com/HolyWu/vs-rife/releases/download/model"
SHIPPED_DIR = Path(__file__).resolve().parents[1] / "weights"

_CHUNK = 1 << 16
_SHA256_RE = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class OfficialModel:
    """One official RIFE v4 checkpoint: where to get it and how to know it is the right file.

    ``sha256`` and ``size`` are ``None`` where no public source states them; such an
    entry is downloaded only when the user supplies the sha256.
    """

    name: str
    arch: str
    url: str
    sha256: str | None
    size: int | None
    note: str = ""

    @property
    def filename(self) -> str:
        return self.url.rstrip("/").rsplit("/", 1)[-1]


def _official(name: str, sha256: str | None, size: int | None, note: str) -> OfficialModel:
    return OfficialModel(
        name=name,
        arch=name,
        url=f"{OFFICIAL_BASE_URL}/flownet_{name}.pkl",
        sha256=sha256,
        size=size,
        note=note,
    )


# Files are hzwer's Practical-RIFE checkpoints as mirrored by HolyWu/vs-rife's "model"
# release. Hashes and sizes were taken from public projects that pin these exact files
# (see the report in the commit history); None where no public source gave a value.
OFFICIAL_MODELS: dict[str, OfficialModel] = {
    m.name: m
    for m in (
        _official(
            "v4.6",
            "008646e761f0e67cb77f0c6c44cfe3c3e5a05d9d9465311b9681ca650ce030db",
            21_273_159,
            "4 blocks, no feature head; fast, the classic choice",
        ),
        _official(
            "v4.22.lite",
            None,
            None,
            "4 narrow blocks with a feature head; sha256 not published, pass --sha256 to download",
        ),
        _official(
            "v4.25",
            "6615790efd627772917205db291f51cd392528a157ecbb2ecaeec3bff8eb6de2",
            None,
            "5 blocks with a feature head; the upstream author's recommended model",
        ),
        _official(
            "v4.25.lite",
            "81cdba223fe72a120130cc8552e5d2ecac824259d406f0c15323b3decf96b8b1",
            None,
            "5 blocks, last one narrow, coarser scales; cheapest of the v4.2x models",
        ),
        _official(
            "v4.26",
            "45c7f74156704769dc9f85cfcaf8552e1e926f9399dcfa3a553dee88fac6f53f",
            24_636_301,
            "same architecture as v4.25, newer training",
        ),
    )
}


def cache_dir() -> Path:
    """Where downloaded official checkpoints live (not created here)."""
    home = os.environ.get(HOME_ENV)
    if home:
        return Path(home).expanduser() / "models"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".cache"
    return base / "rifestream" / "models"


def arch_config(entry: OfficialModel) -> IFNetConfig:
    """The IFNet architecture an official entry loads as."""
    return OFFICIAL_ARCHS[entry.arch]


def _normalise(name: str) -> str:
    name = name.strip()
    return name if name.startswith("v") else f"v{name}"


def find_official(name: str) -> OfficialModel | None:
    """The official entry called ``name`` ("v4.25" or "4.25"), with the base-URL override applied."""
    entry = OFFICIAL_MODELS.get(_normalise(name))
    if entry is None:
        return None
    base = os.environ.get(BASE_URL_ENV)
    if base:
        entry = replace(entry, url=f"{base.rstrip('/')}/{entry.filename}")
    return entry


def get_official(name: str) -> OfficialModel:
    entry = find_official(name)
    if entry is None:
        raise RifestreamError(f"unknown official model {name!r}; known: {', '.join(OFFICIAL_MODELS)}")
    return entry


def cached_path(entry: OfficialModel, cache: Path | None = None) -> Path:
    return (cache or cache_dir()) / entry.filename


def default_model_for(device_type: str) -> str:
    """The model a live job runs when none is named: the CPU model on a CPU, else the full default."""
    return DEFAULT_CPU_MODEL if device_type == "cpu" else DEFAULT_MODEL


def shipped_models(shipped_dir: Path | None = None) -> dict[str, Path]:
    """Packaged ``.safetensors`` models by name (file stem), e.g. ``{"rifestream-v1": …}``."""
    folder = shipped_dir or SHIPPED_DIR
    if not folder.is_dir():
        return {}
    return {p.stem: p for p in sorted(folder.glob("*.safetensors")) if p.is_file()}


def shipped_config(path: Path) -> IFNetConfig | LiteConfig | None:
    """The architecture a rifestream ``.safetensors`` file records, or None if it records none."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except (SafetensorError, OSError) as exc:
        raise RifestreamError(f"{path}: not a readable safetensors file ({exc})") from exc
    return arch_from_metadata(meta, path)


def describe_config(config: IFNetConfig | LiteConfig) -> str:
    """One line: block widths, scales, head, padding, and the block-matching prior when it has one."""
    if isinstance(config, LiteConfig):
        finest = "" if config.dis_finest_scale is None else f", finest level {config.dis_finest_scale}"
        steps = f", {config.flow_iters} fixed-point steps" if config.flow_iters else ""
        steps += ", one motion from both directions" if config.shared_motion else ""
        steps += ", chosen per pixel by bilateral matching" if config.motion_search else ""
        steps += ", on a quadratic path from the stream's pair before" if config.quadratic_motion else ""
        steps += ", spread along the motion it leaves in doubt" if config.timing_hedge else ""
        net = "mask logits and a colour residual" if config.colour_residual else "mask logits"
        net = f"flow corrections, {net}" if config.flow_correction else net
        prior = "; the mask starts from where each frame's forward splat leaves holes" if config.occlusion_prior else ""
        prior += "; a sample outside its frame gives way to the other frame's" if config.edge_occlusion else ""
        warps = f"{config.warp_mode} warps"
        warps = "bicubic warps, bilinear on frames with hard pixel edges" if config.warp_mode == "measured" else warps
        unet = f"a U-Net ({config.widths[0]}/{config.widths[1]}) on a 1/{config.net_level} grid adds {net}"
        unet = unet if config.network else "no network (its U-Net's weights kept, switched off)"
        return (
            f"{config.name}: CPU model, DIS flow ({config.dis_preset}{finest}) on a 1/{config.flow_level} grid"
            f"{steps}; {unet}{prior}; {warps}"
        )
    widths = "/".join(str(c) for c in config.channels)
    scales = "/".join(f"{s:g}" for s in config.scales)
    head = "feature head" if config.head else "no head"
    line = f"{config.name}: blocks {widths}, scales {scales}, {head}, pad {config.pad}"
    if config.search_radius:
        reach = 2 * config.search_radius * config.search_level
        line += (
            f", block-matching prior (radius {config.search_radius} on {config.search_level} px cells: {reach} px, "
            f"{config.search_window}-cell windows{', sub-cell' if config.search_subcell else ''})"
        )
    return line


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _download_command(entry: OfficialModel) -> str:
    cmd = f"rifestream models download {entry.name}"
    return cmd if entry.sha256 else f"{cmd} --sha256 HEX"


def _how_to_get_a_model() -> str:
    return (
        "download an official checkpoint with `rifestream models download v4.25` and pass --model v4.25, "
        "or pass --model PATH to a flownet.pkl or .safetensors file (`rifestream models list` shows every name)"
    )


def resolve_model(
    spec: str | None, *, cache: Path | None = None, shipped_dir: Path | None = None, option: str = "--model"
) -> tuple[Path, str | None]:
    """The weights file a ``--model`` value means, and the architecture to load it as.

    ``option`` is the command-line option that gave ``spec`` (``--init`` for training), named in errors.
    Returns ``(path, version)`` for :func:`rifestream.model.load_model`; ``version``
    is ``None`` where the file itself says (a rifestream file) or the loader should
    detect it (a path).
    """
    shipped = shipped_models(shipped_dir)
    if spec is None:
        if DEFAULT_MODEL in shipped:
            return shipped[DEFAULT_MODEL], None
        raise RifestreamError(
            f"--model NAME|PATH is required until the default model ships ({DEFAULT_MODEL} is not installed); "
            + _how_to_get_a_model()
        )
    path = Path(spec).expanduser()
    if path.is_file():
        return path, None
    entry = find_official(spec)
    if entry is not None:
        cached = cached_path(entry, cache)
        if cached.is_file():
            return cached, entry.arch
        raise RifestreamError(
            f"model {entry.name} is not downloaded yet; run `{_download_command(entry)}` "
            f"(it is saved to {cached.parent})"
        )
    if spec in shipped:
        return shipped[spec], None
    if path.exists():
        raise RifestreamError(f"{option} {spec}: is not a file")
    if path.suffix in (".pkl", ".pth", ".pt", ".safetensors") or os.sep in spec or "/" in spec:
        raise RifestreamError(f"{option} {spec}: no such file")
    names = [*shipped, *OFFICIAL_MODELS]
    raise RifestreamError(f"{option} {spec}: not a file and not a known model name; known: {', '.join(names)}")


def _check_sha256(value: str) -> str:
    value = value.strip().lower()
    if not _SHA256_RE.fullmatch(value):
        raise RifestreamError(f"--sha256 {value!r} is not a sha256 (64 hex digits)")
    return value


def download(
    entry: OfficialModel,
    *,
    sha256: str | None = None,
    cache: Path | None = None,
    force: bool = False,
    progress: bool | None = None,
    timeout: float = 30.0,
) -> Path:
    """Fetch ``entry`` into the cache (or return the file already there) and return its path.

    ``sha256`` is required when the entry has none and must agree with it otherwise.
    ``progress=None`` shows a progress bar when stderr is a terminal. Any failure
    raises :class:`RifestreamError` and leaves no file behind.
    """
    expected = entry.sha256
    if sha256 is not None:
        given = _check_sha256(sha256)
        if expected is not None and given != expected:
            raise RifestreamError(
                f"--sha256 {given} disagrees with the registry's pin for {entry.name} ({expected}); "
                "leave --sha256 out to use the pin"
            )
        expected = given
    if expected is None:
        raise RifestreamError(
            f"no published sha256 for {entry.name}, so its download cannot be verified; "
            f"pass the hash you trust: `rifestream models download {entry.name} --sha256 HEX`"
        )
    folder = cache or cache_dir()
    final = folder / entry.filename
    if final.is_file() and not force:
        if sha256_file(final) == expected:
            return final
        raise RifestreamError(
            f"{final} exists but its sha256 does not match {entry.name}; "
            f"delete it or run `rifestream models download {entry.name} --force`"
        )
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RifestreamError(
            f"cannot create the model cache {folder} ({exc}); set {HOME_ENV} to a writable folder"
        ) from exc

    fd, tmp_name = tempfile.mkstemp(dir=folder, prefix=f".{entry.filename}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            digest, received = _fetch(entry, out, progress, timeout)
            out.flush()
            os.fsync(out.fileno())
        if entry.size is not None and received != entry.size:
            raise RifestreamError(
                f"download of {entry.name} from {entry.url} gave {received} bytes, expected {entry.size}; "
                "nothing was saved, run the command again"
            )
        if digest != expected:
            raise RifestreamError(
                f"download of {entry.name} from {entry.url} has sha256 {digest}, expected {expected}; "
                "the file was discarded (a changed or corrupted file, or a wrong --sha256)"
            )
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return final


def _fetch(entry: OfficialModel, out: BinaryIO, progress: bool | None, timeout: float) -> tuple[str, int]:
    """Stream ``entry.url`` into ``out``; return (sha256 hex, byte count)."""
    digest = hashlib.sha256()
    received = 0
    where = f"{entry.name} from {entry.url}"
    try:
        request = urllib.request.Request(entry.url, headers={"User-Agent": f"rifestream/{__version__}"})
        with urllib.request.urlopen(request, timeout=timeout) as response:
            length_header = response.headers.get("Content-Length")
            length = int(length_header) if length_header and length_header.isdigit() else None
            total = length or entry.size
            update = _progress_bar(entry.filename, total, progress)
            try:
                while True:
                    chunk = response.read(_CHUNK)
                    if not chunk:
                        break
                    out.write(chunk)
                    digest.update(chunk)
                    received += len(chunk)
                    update(len(chunk))
            finally:
                update(None)
    except urllib.error.HTTPError as exc:
        raise RifestreamError(f"download of {where} failed: HTTP {exc.code} {exc.reason}") from exc
    except urllib.error.URLError as exc:
        raise RifestreamError(f"download of {where} failed: {exc.reason}") from exc
    except (http.client.IncompleteRead, ConnectionError) as exc:
        raise RifestreamError(
            f"download of {where} stopped after {received} bytes (the server closed the connection); "
            "nothing was saved, run the command again"
        ) from exc
    except (http.client.HTTPException, TimeoutError, OSError) as exc:
        raise RifestreamError(
            f"download of {where} failed after {received} bytes ({type(exc).__name__}: {exc}); nothing was saved"
        ) from exc
    except ValueError as exc:  # urllib's "unknown url type" and similar
        raise RifestreamError(f"cannot download {where}: {exc}; check {BASE_URL_ENV} if you set it") from exc
    if length is not None and received != length:
        raise RifestreamError(
            f"download of {where} stopped after {received} of {length} bytes; nothing was saved, run the command again"
        )
    return digest.hexdigest(), received


def _progress_bar(label: str, total: int | None, progress: bool | None) -> Callable[[int | None], None]:
    """A callback fed byte counts (``None`` closes it); a no-op when no bar is wanted."""
    if progress is None:
        progress = sys.stderr.isatty()
    if not progress:
        return lambda n: None
    from tqdm import tqdm

    bar = tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=label, file=sys.stderr)

    def update(n: int | None) -> None:
        if n is None:
            bar.close()
        else:
            bar.update(n)

    return update
