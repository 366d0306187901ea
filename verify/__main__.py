"""``python -m limen.verify`` is the ``limen`` command."""

import sys

from .cli import main

sys.exit(main())
