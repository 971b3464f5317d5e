"""`python -m wizard.fleet ...` is `python -m wizard fleet ...`."""

import sys

from wizard.cli import main

sys.exit(main(["fleet", *sys.argv[1:]]))
