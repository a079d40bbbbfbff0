#!/usr/bin/env python3
"""Entry point: ``python run_stream.py [PIPELINE.toml] [flags]`` is ``rifestream run``."""

import sys

from rifestream.cli import main

if __name__ == "__main__":
    sys.exit(main(["run", *sys.argv[1:]]))
