"""robustc.cli: the ``robustc`` command (:func:`main`), one module per subcommand.

:mod:`~robustc.cli.main` builds the parser and dispatches; :mod:`~robustc.cli.common`
declares what subcommands share (exit codes, ``--set``, common arguments); each subcommand
module (``check``, ``fmt``, ``verify``, ``compile``, ``maximize``, ``attack``, ``patch``,
``global_``, ``dump``) parses its arguments and calls the API. Nothing else in robustc
imports this package.
"""

from robustc.cli.main import console, main

__all__ = ["console", "main"]
