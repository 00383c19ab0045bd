"""`python -m load SCENARIO [--runs N] [--rate R] [--workers W] [--target URL] ...`"""

import sys

from load.cli import main

sys.exit(main(sys.argv[1:]))
