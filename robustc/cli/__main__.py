"""``python -m robustc.cli``: the ``robustc`` command."""

from robustc.cli.main import console

console()
