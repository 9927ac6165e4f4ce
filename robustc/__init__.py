"""robustc: a compiler for neural-network robustness properties.

``import robustc`` is cheap: it does not import torch, gurobipy or z3. Those are imported
by the backend or runtime module that needs them.
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

__all__ = [
    "__version__",
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
