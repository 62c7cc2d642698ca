"""``python -m kdzoo.cli``: the same as the ``kdzoo`` command."""

import sys

from kdzoo.cli import main

sys.exit(main())
