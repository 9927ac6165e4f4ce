"""Branch and bound over ReLU phases with optimised linear bounds (beta-CROWN).

* :mod:`~robustc.verify.relu_split.chain`: the graph as a chain of dense layers and ReLUs;
* :mod:`~robustc.verify.relu_split.bounder`: the alpha/beta-CROWN bound and its optimiser;
* :mod:`~robustc.verify.relu_split.search`: the search tree and the driver
  (:func:`~robustc.verify.relu_split.search.decide_cases`);
* :mod:`~robustc.verify.relu_split.refine`: hidden bounds refined by a search per neuron;
* :mod:`~robustc.verify.relu_split.options`: :class:`ReluSplitOptions`;
* :mod:`~robustc.verify.relu_split.strategy`: the pipeline's hook
  (:func:`~robustc.verify.relu_split.strategy.decide_by_relu_split`).
"""
