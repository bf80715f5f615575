"""``python -m clrplug``: the same as the ``clrplug`` command."""

import sys

from clrplug.cli import main

sys.exit(main())
