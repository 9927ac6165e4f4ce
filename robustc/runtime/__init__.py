"""robustc.runtime: PyTorch execution of the IR (GPU when present, CPU always).

Submodules import torch; this package's ``__init__`` does not, so ``import robustc.runtime``
stays cheap. Use :func:`robustc.runtime.torch_module.to_torch` to build a module.
"""
