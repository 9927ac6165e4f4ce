"""``python -m robustc``: the ``robustc`` command."""

from robustc.cli.main import console

console()
