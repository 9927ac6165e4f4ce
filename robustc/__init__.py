"""robustc: a compiler for neural-network robustness properties.

``import robustc`` is cheap: it does not import torch, gurobipy or z3. Those are imported
by the backend or runtime module that needs them.

The embedding API (docs/api.md) is :mod:`robustc.api`; ``robustc.load_spec``,
``robustc.SpecBuilder`` and ``robustc.api`` are loaded on first use. (``robustc.verify`` is
the verification package: its spec-level function is ``robustc.api.verify``.)
"""

import os as _os
import sys as _sys

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

#: PyTorch's CPU tensors of 2 MiB or more on transparent huge pages (its own switch,
#: read once, at its first allocation: set here only where torch is not imported yet, and
#: never over the caller's value; ``THP_MEM_ALLOC_ENABLE=0`` turns it off). The bound
#: propagation allocates and frees such tensors all the time, and every fresh 4 KiB page
#: is a fault the kernel zeroes: resnet_4b prop_13 (VNN-COMP 2021 cifar10_resnet) spent
#: 215 of its 604 s in the kernel, 129 million minor faults; with huge pages, 120 s side
#: by side, 4,813 domains against 4,107, 21 s in the kernel against 34 (``docs/verify.md``,
#: "Memory of the graph search"). A kernel without them, or with them off, ignores it.
THP_ENV = "THP_MEM_ALLOC_ENABLE"
if "torch" not in _sys.modules:
    _os.environ.setdefault(THP_ENV, "1")

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
