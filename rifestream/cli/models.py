"""``rifestream models list|info|download``: the models this install knows, and fetching official ones."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rifestream.cli.options import add_subcommand

HELP = "list, inspect and download models"
DESCRIPTION = """\
List, inspect and download models. A --model value anywhere in rifestream is a path
to a weights file, a shipped model name (rifestream-v7, the default on a GPU; rifestream-lite,
the default on a CPU; rifestream-v1) or an official RIFE v4 checkpoint name (v4.6, v4.22.lite,
v4.25, v4.25.lite, v4.26) downloaded here. `models list` marks the defaults.

Downloads go to $RIFESTREAM_HOME/models, else $XDG_CACHE_HOME/rifestream/models
(~/.cache/rifestream/models); RIFESTREAM_MODEL_BASE_URL points the downloads at a mirror.
Every download is checked against its sha256 before it is kept."""


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = add_subcommand(subparsers, "models", run, help=HELP, description=DESCRIPTION)
    actions = parser.add_subparsers(dest="models_action", metavar="ACTION", required=True)
    actions.add_parser("list", help="shipped and official models, their size, architecture and whether cached")
    info = actions.add_parser("info", help="details of one model: architecture, URL, sha256, cache state")
    info.add_argument("name", metavar="NAME", help="official or shipped model name, or a path to a weights file")
    download = actions.add_parser("download", help="download an official checkpoint into the cache")
    download.add_argument("name", metavar="NAME", help="official model name, e.g. v4.25")
    download.add_argument(
        "--sha256",
        metavar="HEX",
        help="expected sha256 of the file; required for entries without a published hash",
    )
    download.add_argument("--force", action="store_true", help="download again even if a cached copy exists")
    download.add_argument("--no-progress", action="store_true", help="no progress bar even on a terminal")
    return parser


def run(args: argparse.Namespace) -> int:
    from rifestream.model import registry

    action = args.models_action
    if action == "list":
        return _list(registry)
    if action == "info":
        return _info(registry, args.name)
    return _download(registry, args)


def _size_text(size: int | None) -> str:
    if size is None:
        return "?"
    return f"{size / (1024 * 1024):.1f} MiB"


def _default_marks(registry) -> dict[str, str]:
    """On which device each default model runs when no --model is named: ``{"rifestream-v7": "gpu", …}``."""
    marks: dict[str, list[str]] = {}
    for label, device_type in (("gpu", "cuda"), ("cpu", "cpu")):
        marks.setdefault(registry.default_model_for(device_type), []).append(label)
    return {name: ", ".join(labels) for name, labels in marks.items()}


def _list(registry) -> int:
    marks = _default_marks(registry)
    rows = [("NAME", "KIND", "ARCH", "SIZE", "CACHED", "DEFAULT")]
    for name, path in registry.shipped_models().items():
        try:
            config = registry.shipped_config(path)
            arch = config.name if config else "not recorded"
        except Exception as exc:  # a broken packaged file should not hide the others
            arch = f"unreadable ({type(exc).__name__})"
        rows.append((name, "shipped", arch, _size_text(path.stat().st_size), "packaged", marks.get(name, "")))
    for name in registry.OFFICIAL_MODELS:
        entry = registry.get_official(name)
        cached = registry.cached_path(entry)
        size = cached.stat().st_size if cached.is_file() else entry.size
        rows.append((name, "official", entry.arch, _size_text(size), "yes" if cached.is_file() else "no", ""))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    print(f"\ncache: {registry.cache_dir()}")
    if not registry.shipped_models():
        print(f"no shipped model yet ({registry.DEFAULT_MODEL}); pass --model NAME|PATH to other commands")
    return 0


def _info(registry, name: str) -> int:
    from rifestream.io.url_redact import redact_url

    entry = registry.find_official(name)
    shipped = registry.shipped_models()
    if entry is not None:
        cached = registry.cached_path(entry)
        lines = [
            ("name", entry.name),
            ("kind", "official RIFE checkpoint"),
            ("architecture", registry.describe_config(registry.arch_config(entry))),
            ("about", entry.note),
            ("url", redact_url(entry.url)),  # a mirror's URL (RIFESTREAM_MODEL_BASE_URL) may hold a token
            ("size", f"{entry.size} bytes" if entry.size is not None else "unknown (not published)"),
            ("sha256", entry.sha256 or "unknown (not published; download needs --sha256)"),
        ]
        if cached.is_file():
            actual = registry.sha256_file(cached)
            state = "matches" if entry.sha256 is None or actual == entry.sha256 else "DOES NOT MATCH the pin"
            lines.append(("cached", f"{cached} (sha256 {actual}, {state})"))
        else:
            command = f"rifestream models download {entry.name}" + ("" if entry.sha256 else " --sha256 HEX")
            lines.append(("cached", f"no; get it with `{command}`"))
    elif name in shipped:
        path = shipped[name]
        config = registry.shipped_config(path)
        lines = [
            ("name", name),
            ("kind", "shipped with rifestream"),
            ("architecture", registry.describe_config(config) if config else "not recorded in the file"),
            ("path", str(path)),
            ("size", f"{path.stat().st_size} bytes"),
            ("sha256", registry.sha256_file(path)),
        ]
    elif Path(name).expanduser().is_file():
        from rifestream.model import load_model

        path = Path(name).expanduser()
        model = load_model(path)
        lines = [
            ("path", str(path)),
            ("kind", "weights file"),
            ("architecture", registry.describe_config(model.config)),
            ("size", f"{path.stat().st_size} bytes"),
            ("sha256", registry.sha256_file(path)),
        ]
    else:
        from rifestream.errors import RifestreamError

        known = [*shipped, *registry.OFFICIAL_MODELS]
        raise RifestreamError(f"{name!r} is not a known model or a file; known: {', '.join(known)}")
    width = max(len(key) for key, _ in lines) + 1
    for key, value in lines:
        print(f"{(key + ':').ljust(width)} {value}")
    return 0


def _download(registry, args: argparse.Namespace) -> int:
    entry = registry.get_official(args.name)
    progress = False if args.no_progress else None
    had_it = registry.cached_path(entry).is_file() and not args.force
    path = registry.download(entry, sha256=args.sha256, force=args.force, progress=progress)
    print(path)
    state = "already downloaded and verified" if had_it else "downloaded and verified"
    print(f"{entry.name}: {state}; use it with --model {entry.name}", file=sys.stderr)
    return 0
