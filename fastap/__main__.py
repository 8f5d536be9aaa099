"""``python -m fastap``: the same as the ``fastap`` command."""

import sys

from fastap._cli import main

sys.exit(main())
