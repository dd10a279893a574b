"""``python -m symflow ...``: the same command line as the ``symflow`` script."""

import sys

from symflow.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
