"""``python -m robustc``: the ``robustc`` command."""

import sys

from robustc.cli.main import main

sys.exit(main())
