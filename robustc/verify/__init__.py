"""robustc.verify: one property of one network to one trusted verdict.

The public API is :func:`verify` with :class:`VerifyOptions`, returning a :class:`Result`
(verdicts :data:`ROBUST`, :data:`NOT_ROBUST`, :data:`UNKNOWN`, :data:`ERROR`), and
:func:`export_problem` for the MILP files of a problem. Inside:

* :mod:`~robustc.verify.pipeline`: attack, bounds, choice of strategy, exact mode;
* :mod:`~robustc.verify.results` and :mod:`~robustc.verify.run`: result types and the state
  of one call (deadline, statistics, replay of candidate points);
* :mod:`~robustc.verify.milp`: one violation case decided by one MILP query;
* :mod:`~robustc.verify.cases`: violation cases, margin graphs, search outcomes;
* :mod:`~robustc.verify.input_split` and :mod:`~robustc.verify.relu_split`: the branch and
  bound strategies (a search module, and a strategy module that runs it for the pipeline);
* :mod:`~robustc.verify.vnncomp`: VNN-LIB problems and VNN-COMP result files.
"""

from robustc.ir.problem import Problem
from robustc.verify.pipeline import check_device, export_problem, verify
from robustc.verify.results import (
    CLEAR_VIOLATION,
    ERROR,
    NOT_ROBUST,
    REPLAY_SLACK,
    ROBUST,
    UNKNOWN,
    VERDICTS,
    Counterexample,
    Result,
    VerifyOptions,
)

__all__ = ["Problem", "VerifyOptions", "Result", "Counterexample", "verify", "export_problem",
           "VERDICTS", "ROBUST", "NOT_ROBUST", "UNKNOWN", "ERROR", "REPLAY_SLACK",
           "CLEAR_VIOLATION", "check_device"]
