"""robustc.compiler: ONNX + spec to IR, and the passes over the IR.

* :func:`load_onnx`: import an ONNX file into a verified IR graph.
* :func:`standard_passes`: the default pass pipeline (folding, merging).
"""

from robustc.compiler.onnx_import import load_onnx
from robustc.compiler.passes import PASSES, Pipeline, standard_passes

__all__ = ["load_onnx", "standard_passes", "Pipeline", "PASSES"]
