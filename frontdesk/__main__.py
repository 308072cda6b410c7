"""``python -m frontdesk ...`` is the ``frontdesk`` command (how the CLI starts its worker and the fake APIs)."""

import sys

from frontdesk.cli import main

sys.exit(main())
