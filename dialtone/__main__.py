"""``python -m dialtone``: the same as the ``dialtone`` command."""

import sys

from dialtone.cli import main

sys.exit(main())
