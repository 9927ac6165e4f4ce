"""Linear bounds (CROWN, alpha-CROWN) on the IR graph, one operator at a time, in PyTorch.

:mod:`~robustc.compiler.crown.operators` holds each node type's rules (its affine map, its
backward rule, the ReLU and MaxPool relaxations); :mod:`~robustc.compiler.crown.engine`
runs them over the DAG (:class:`~robustc.compiler.crown.engine.Crown`,
:func:`~robustc.compiler.crown.engine.crown_bounds`). Importing this package does not import
torch; building a ``Crown`` does.
"""
