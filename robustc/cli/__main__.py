"""``python -m robustc.cli``: the ``robustc`` command."""

import sys

from robustc.cli.main import main

sys.exit(main())
