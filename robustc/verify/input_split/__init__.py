"""Branch and bound over input splits (few perturbed inputs, many unstable ReLUs).

:mod:`~robustc.verify.input_split.search` is the search (it reads only the IR; the attack,
gradients and exact decisions are callbacks); :mod:`~robustc.verify.input_split.strategy`
runs it for the pipeline (:func:`~robustc.verify.input_split.strategy.decide_by_splitting`).
"""
