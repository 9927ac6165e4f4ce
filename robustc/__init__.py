"""robustc: a compiler for neural-network robustness properties.

``import robustc`` is cheap: it does not import torch, gurobipy or z3. Those are imported
by the backend or runtime module that needs them.

The embedding API (docs/api.md) is :mod:`robustc.api`; ``robustc.load_spec``,
``robustc.SpecBuilder`` and ``robustc.api`` are loaded on first use. (``robustc.verify`` is
the verification package: its spec-level function is ``robustc.api.verify``.)
"""

from robustc.errors import (
    EmptyInputSet,
    Error,
    IRError,
    LicenseLimit,
    MissingComponent,
    ModelError,
    OutputError,
    ReplayError,
    ShapeError,
    SolverError,
    SolverUnavailable,
    SpecError,
    UnsupportedOperator,
)

__version__ = "0.1.0"

#: Names of :mod:`robustc.api` offered here, imported on first use (PEP 562).
_LAZY = ("load_spec", "SpecBuilder")


def __getattr__(name: str):
    if name == "api" or name in _LAZY:
        import robustc.api as api  # the submodule import sets robustc.api: no recursion

        return api if name == "api" else getattr(api, name)
    raise AttributeError(f"module 'robustc' has no attribute {name!r}")


__all__ = [
    "__version__",
    "api",
    "load_spec",
    "SpecBuilder",
    "EmptyInputSet",
    "Error",
    "IRError",
    "LicenseLimit",
    "MissingComponent",
    "ModelError",
    "OutputError",
    "ReplayError",
    "ShapeError",
    "SolverError",
    "SolverUnavailable",
    "SpecError",
    "UnsupportedOperator",
]
