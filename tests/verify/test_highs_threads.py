"""HiGHS runs every solve of a process on one scheduler whose thread count is fixed when it
starts: a solve asking for another count must still be solved, whoever started the scheduler
(regression: CI saw "Not Set" errors on every solve with ``threads=1`` after the LP bound
tightening, which leaves ``threads`` unset, had started the scheduler with HiGHS's default)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent("""
    import numpy as np
    import scipy.sparse as sp
    from scipy.optimize import Bounds, LinearConstraint, milp

    from robustc.backends import highs
    from robustc.backends.milp.model import MilpModel
    from robustc.backends.solve import FEASIBLE, SolveOptions

    rng = np.random.default_rng(0)
    A = rng.uniform(-1, 1, (6, 5))
    cost = rng.uniform(-1, 1, 5)
    integer = np.array([1, 1, 0, 1, 0], dtype=bool)
    lb, ub, hi = -2 * np.ones(5), 3 * np.ones(5), rng.uniform(0.5, 2, 6)
    model = MilpModel(A=sp.csr_matrix(A), row_lower=np.full(6, -np.inf), row_upper=hi,
                      lb=lb, ub=ub, integer=integer, objective=cost, objective_const=0.0,
                      input_index=np.arange(5), input_fixed=np.zeros(5))
    oracle = milp(cost, constraints=LinearConstraint(A, -np.inf, hi),
                  integrality=integer.astype(int), bounds=Bounds(lb, ub))
    def foreign(threads):  # another highspy user in the process (robustc's LP bounds, the user)
        import highspy
        h = highspy.Highs()
        h.setOptionValue("output_flag", False)
        if threads:
            h.setOptionValue("threads", threads)
        h.addVar(0.0, 1.0)
        h.changeColCost(0, -1.0)
        h.run()

    solved = []
    # the foreign solve starts the scheduler with 3 threads, one robustc asks for nowhere
    for threads in ("foreign 3", 1, None, 2, None, 1, 1, "foreign", 2, 1):
        if isinstance(threads, str):
            foreign(int(threads.split()[-1]) if " " in threads else None)
            continue
        out = highs.solve(model, SolveOptions(threads=threads))
        assert out.status == FEASIBLE, (threads, out.status, out.reason)
        assert abs(out.objective - oracle.fun) < 1e-6, (threads, out.objective, oracle.fun)
        solved.append(threads)
    print("ok", len(solved))
""")


def test_changing_thread_counts_in_one_process_still_solves():
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "ok 8", done.stdout
