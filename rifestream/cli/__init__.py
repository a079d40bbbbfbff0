"""The ``rifestream`` command line: one module per subcommand, each with ``add_parser`` and ``run``.

Subcommand modules import only argparse at module level; heavy imports (torch,
av) happen inside their ``run`` so that ``--help`` is instant.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from typing import NoReturn

from rifestream import __version__
from rifestream.errors import RifestreamError
from rifestream.io.url_redact import redact_text

SUBCOMMANDS = ("run", "fleet", "interpolate", "bench", "models", "train", "eval", "probe")


class RedactingFormatter(logging.Formatter):
    """Every log line with the secrets of the URLs in it masked (``redact_text``), whoever logged it:
    the package's own lines mask their URLs already, this also covers FFmpeg's and other libraries'."""

    def format(self, record: logging.LogRecord) -> str:
        return redact_text(super().format(record))


class _Parser(argparse.ArgumentParser):
    """argparse's usage errors quote the bad value (``invalid int value: 'rtmp://…'``): redacted too."""

    def error(self, message: str) -> NoReturn:
        super().error(redact_text(message))


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="rifestream",
        description="Streaming, real-time video frame-rate upconversion with RIFE's IFNet.",
    )
    parser.add_argument("--version", action="version", version=f"rifestream {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in SUBCOMMANDS:
        module = importlib.import_module(f"rifestream.cli.{name}")
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, handlers=[handler])
    try:
        return int(args.func(args) or 0)
    except RifestreamError as exc:
        print(f"rifestream {args.command}: error: {redact_text(str(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"rifestream {args.command}: interrupted", file=sys.stderr)
        return 130
