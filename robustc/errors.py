"""The one exception family of robustc.

Every error robustc raises derives from :class:`Error` and from the matching built-in
exception, so callers can catch either (``except robustc.Error`` or ``except ValueError``).

This module is a leaf: it imports nothing, so every subpackage (``specs`` and ``ir``
included) may use it without breaking the one-way import rule.
"""

from __future__ import annotations


class Error(Exception):
    """Base class of every error robustc raises on purpose."""


class SpecError(Error, ValueError):
    """A `.rspec` file is malformed or inconsistent.

    ``diagnostics`` holds one entry per problem (the language module fills it with
    positioned messages); ``str()`` renders all of them.
    """

    def __init__(self, message: str, diagnostics: list | None = None):
        super().__init__(message)
        self.diagnostics = list(diagnostics or [])


class EmptyInputSet(SpecError):
    """A property's input set is empty (e.g. a VNN-LIB bound with lower > upper): nothing
    can be verified, and a vacuous "robust" would be no proof of anything."""


class ModelError(Error, ValueError):
    """A network file is missing, corrupt, or cannot be given static shapes."""


class UnsupportedOperator(Error, NotImplementedError):
    """The network uses operators or attributes robustc cannot lower.

    ``problems`` lists every offending node as ``(op_type, node_name, detail)``.
    """

    def __init__(self, message: str, problems: list[tuple[str, str, str]] | None = None):
        super().__init__(message)
        self.problems = list(problems or [])


class ShapeError(Error, ValueError):
    """A tensor, box or property does not have the shape the network expects."""


class IRError(Error, ValueError):
    """The IR is malformed (raised by ``verify()``); a bug in robustc or a caller."""


class SolverError(Error, RuntimeError):
    """A solver failed, crashed or returned something robustc cannot interpret."""


class SolverUnavailable(SolverError):
    """The requested solver is not installed or cannot start."""


class LicenseLimit(SolverError):
    """The model is larger than the installed solver license allows."""


class MissingComponent(Error, ImportError):
    """An optional part a command asked for is not installed (e.g. Ray for ``--ray``)."""


class OutputError(Error, OSError):
    """An output file or folder cannot be written (checked before the work starts; a write
    that fails later leaves no partial file behind)."""


class ReplayError(Error, RuntimeError):
    """A claimed counterexample does not violate the property when replayed."""


__all__ = [
    "Error",
    "SpecError",
    "EmptyInputSet",
    "ModelError",
    "UnsupportedOperator",
    "ShapeError",
    "IRError",
    "SolverError",
    "SolverUnavailable",
    "LicenseLimit",
    "MissingComponent",
    "OutputError",
    "ReplayError",
]
