"""Reading and writing IFNet weights.

Two formats are read:

* official RIFE ``flownet.pkl``: a plain ``state_dict`` saved from a
  DataParallel-wrapped IFNet (``module.`` prefix), loaded with
  ``weights_only=True``; the architecture is detected from names and shapes;
* the project's own ``.safetensors`` files, with the :class:`IFNetConfig`
  recorded in the metadata under ``rifestream.arch``.
"""

from __future__ import annotations

import json
import pickle
import re
import warnings
from pathlib import Path

import torch

from rifestream.errors import RifestreamError
from rifestream.model.ifnet import OFFICIAL_ARCHS, IFNet, IFNetConfig
from rifestream.model.lite import LiteConfig, LiteNet

ARCH_METADATA_KEY = "rifestream.arch"


class CheckpointError(RifestreamError, ValueError):
    """A weights file that cannot be turned into an IFNet; the message says why."""


def _strip_prefix(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    if any(k.startswith("module.") for k in state):
        return {k.removeprefix("module."): v for k, v in state.items()}
    return dict(state)


def architecture_signature(state: dict[str, torch.Tensor]) -> tuple[tuple[int, ...], bool, int]:
    """(block widths, has head, k_out) read off a state dict's names and shapes."""
    widths: dict[int, int] = {}
    k_outs: set[int] = set()
    for key, tensor in state.items():
        m = re.fullmatch(r"block(\d+)\.conv0\.1\.0\.weight", key)
        if m:
            widths[int(m.group(1))] = int(tensor.shape[0])
        m = re.fullmatch(r"block(\d+)\.lastconv\.0\.weight", key)
        if m:
            k_outs.add(int(tensor.shape[1]) // 4)
    if not widths or sorted(widths) != list(range(len(widths))):
        raise CheckpointError(
            f"no IFNet blocks found (expected keys like 'block0.conv0.1.0.weight', got e.g. {sorted(state)[:3]})"
        )
    if len(k_outs) != 1:
        raise CheckpointError(f"inconsistent block outputs in checkpoint: {sorted(k_outs)}")
    channels = tuple(widths[i] for i in range(len(widths)))
    return channels, "encode.cnn0.weight" in state, k_outs.pop()


def detect_version(state: dict[str, torch.Tensor]) -> str:
    """Name of the official architecture a (prefix-stripped) state dict fits.

    v4.25 and v4.26 share one architecture; such files are reported as "v4.25".
    """
    channels, head, k_out = architecture_signature(state)
    for name, cfg in OFFICIAL_ARCHS.items():
        if cfg.channels == channels and cfg.head == head and cfg.k_out == k_out:
            return name
    known = ", ".join(f"{n} {c.channels}{' +head' if c.head else ''}" for n, c in OFFICIAL_ARCHS.items())
    raise CheckpointError(
        f"checkpoint fits no known IFNet architecture (blocks {channels}, "
        f"{'with' if head else 'without'} head, k_out {k_out}); known: {known}. "
        "Pass version= for one of those, or use a rifestream .safetensors file that records its architecture"
    )


def build_model(config: IFNetConfig | LiteConfig, state: dict[str, torch.Tensor]) -> IFNet | LiteNet:
    """The model of ``config`` holding ``state``; refuses missing, unused or misshapen tensors by name."""
    model = LiteNet(config) if isinstance(config, LiteConfig) else IFNet(config)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unused = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(expected) & set(state) if expected[k].shape != state[k].shape)
    problems = []
    if missing:
        problems.append(f"missing {len(missing)} keys: {', '.join(missing[:6])}{' …' if len(missing) > 6 else ''}")
    if unused:
        problems.append(f"unused {len(unused)} keys: {', '.join(unused[:6])}{' …' if len(unused) > 6 else ''}")
    if wrong:
        problems.append(
            "wrong shapes: "
            + ", ".join(f"{k} {tuple(state[k].shape)} != {tuple(expected[k].shape)}" for k in wrong[:4])
        )
    if problems:
        raise CheckpointError(f"weights do not fit architecture {config.name}: " + "; ".join(problems))
    model.load_state_dict({k: v.float() for k, v in state.items()})
    return model.eval()


def safe_torch_load(path: Path, what: str) -> object:
    """``torch.load(path, weights_only=True)`` with torch's warnings silenced and its errors as one line.

    ``weights_only`` loads tensors and plain containers, never code; a pickle that holds anything
    else is refused as "not a safe ``what``" (torch's own message is a paragraph about its
    defaults, and it warns about the pickle protocol on stderr before it).
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"{path}: not a safe {what}: it is a pickle holding more than tensors, which rifestream does not "
            "load (a file from a program that saves whole objects, or not a checkpoint at all)"
        ) from exc


def _read_pkl(path: Path) -> dict[str, torch.Tensor]:
    try:
        obj = safe_torch_load(path, "PyTorch weights file")
    except CheckpointError as exc:
        raise CheckpointError(f"{exc}; pass an official RIFE flownet.pkl or a rifestream .safetensors file") from exc
    except Exception as exc:  # torch raises several types for corrupt or unsafe files
        first_line = (str(exc).strip().splitlines() or [""])[0][:160]
        raise CheckpointError(
            f"{path}: not a readable PyTorch checkpoint ({type(exc).__name__}: {first_line}); "
            "pass an official RIFE flownet.pkl or a rifestream .safetensors file"
        ) from exc
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path}: expected a state_dict of tensors, got {type(obj).__name__}")
    return _strip_prefix(obj)


def _read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], IFNetConfig | LiteConfig | None]:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            state = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"{path}: not a readable safetensors file ({exc})") from exc
    return _strip_prefix(state), arch_from_metadata(meta, path)


def arch_from_metadata(meta: dict[str, str], path: str | Path) -> IFNetConfig | LiteConfig | None:
    """The architecture a rifestream file's metadata records (None if none); a broken record is a
    CheckpointError naming the file, not a traceback."""
    text = meta.get(ARCH_METADATA_KEY)
    if not text:
        return None
    try:
        family = LiteConfig if json.loads(text).get("family") == "lite" else IFNetConfig
        return family.from_json(text)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise CheckpointError(f"{path}: its {ARCH_METADATA_KEY} metadata is not a valid architecture ({exc})") from exc


def load_model(path: str | Path, version: str | None = None, device: str | torch.device = "cpu") -> IFNet | LiteNet:
    """Load weights from an official ``flownet.pkl`` or a rifestream ``.safetensors`` file (an IFNet,
    or the CPU model :class:`LiteNet` when the file records that architecture).

    ``version`` names an official architecture (``v4.6``, ``v4.22.lite``,
    ``v4.25``, ``v4.25.lite``, ``v4.26``; the ``v`` may be left out, as vs-rife and
    Practical-RIFE write ``4.6``); ``None`` detects it (or reads it from a rifestream file).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such model file")
    config: IFNetConfig | None = None
    if path.suffix == ".safetensors":
        state, config = _read_safetensors(path)
    else:
        state = _read_pkl(path)
    if version is not None:
        version = version.strip()
        version = version if version.startswith("v") else f"v{version}"
        if version not in OFFICIAL_ARCHS:
            raise CheckpointError(f"unknown version {version!r}; known: {', '.join(OFFICIAL_ARCHS)}")
        config = OFFICIAL_ARCHS[version]
    elif config is None:
        config = OFFICIAL_ARCHS[detect_version(state)]
    return build_model(config, state).to(device)


def save_model(model: IFNet | LiteNet, path: str | Path, dtype: torch.dtype = torch.float16, **metadata: str) -> None:
    """Write ``model`` as a rifestream ``.safetensors`` file that records its architecture."""
    from safetensors.torch import save_file

    state = {k: v.detach().to("cpu", dtype).contiguous() for k, v in model.state_dict().items()}
    meta = {ARCH_METADATA_KEY: model.config.to_json(), **{k: str(v) for k, v in metadata.items()}}
    save_file(state, str(path), metadata=meta)


def save_official_format(model: IFNet, path: str | Path) -> None:
    """Write ``model`` the way official RIFE releases are stored (DataParallel ``module.`` prefix)."""
    torch.save({f"module.{k}": v.detach().cpu() for k, v in model.state_dict().items()}, str(path))
