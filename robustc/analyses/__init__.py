"""robustc.analyses: the problem types beyond one verify property, each with its algorithm
and its report.

* :mod:`~robustc.analyses.maximize`: the maximal robust layered neighbourhood;
* :mod:`~robustc.analyses.attack`: targeted multi-label attacks (JMA, ML-C&W, PGD);
* :mod:`~robustc.analyses.patch`: the smallest weight patch of a layer, AIGENT inputs;
* :mod:`~robustc.analyses.global_robustness`: global correctness and robustness over a
  generator.

Analyses build on :mod:`robustc.verify`, :mod:`robustc.compiler` and :mod:`robustc.runtime`;
nothing below them imports this package.
"""
