import sys

from rifestream.cli import main

sys.exit(main())
