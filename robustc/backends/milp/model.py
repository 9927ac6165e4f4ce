"""A solver-neutral MILP: variables with bounds and integrality, ranged sparse rows.

``lower_row <= A x <= upper_row``, ``lb <= x <= ub``, some ``x`` integer, minimise
``objective . x + objective_const``. Affine expressions over the model's variables are
pairs ``(E, c)`` of a CSR matrix (one row per expression) and a constant vector; the
builder pads their column count as variables are added, so expressions built early stay
valid.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp


@dataclass(frozen=True, eq=False)
class MilpModel:
    """A built MILP (see the module docstring).

    ``input_index[i]`` is the variable of flattened input value ``i``, or -1 where the
    input is fixed (its value is then ``input_fixed[i]``).
    """

    A: sp.csr_matrix
    row_lower: np.ndarray
    row_upper: np.ndarray
    lb: np.ndarray
    ub: np.ndarray
    integer: np.ndarray
    objective: np.ndarray
    objective_const: float
    input_index: np.ndarray
    input_fixed: np.ndarray
    col_names: tuple[str, ...] = ()
    stats: dict = field(default_factory=dict)

    @property
    def num_vars(self) -> int:
        return len(self.lb)

    @property
    def num_binaries(self) -> int:
        return int(self.integer.sum())

    @property
    def num_rows(self) -> int:
        return self.A.shape[0]

    def input_values(self, solution: np.ndarray) -> np.ndarray:
        """The flattened input encoded by a solution vector."""
        x = self.input_fixed.copy()
        free = self.input_index >= 0
        x[free] = solution[self.input_index[free]]
        return x


def _cat(arrays: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(arrays) if arrays else np.zeros(0)


def pad(E: sp.csr_matrix, n: int) -> sp.csr_matrix:
    """``E`` with ``n`` columns (it must have at most ``n``); shares its arrays."""
    if E.shape[1] == n:
        return E
    return sp.csr_matrix((E.data, E.indices, E.indptr), shape=(E.shape[0], n))


class MilpBuilder:
    """Accumulates variables and rows; :meth:`build` returns a :class:`MilpModel`."""

    def __init__(self):
        self._lb: list[np.ndarray] = []
        self._ub: list[np.ndarray] = []
        self._int: list[np.ndarray] = []
        self._names: list[str] = []
        self._rows: list[sp.csr_matrix] = []
        self._row_lo: list[np.ndarray] = []
        self._row_hi: list[np.ndarray] = []
        self.num_vars = 0

    def add_vars(self, lb, ub, *, integer: bool = False, name: str = "v") -> np.ndarray:
        """Add variables with bounds ``lb``/``ub`` (arrays); returns their indices."""
        lb = np.atleast_1d(np.asarray(lb, dtype=np.float64))
        ub = np.atleast_1d(np.asarray(ub, dtype=np.float64))
        n = len(lb)
        idx = np.arange(self.num_vars, self.num_vars + n)
        self._lb.append(lb)
        self._ub.append(ub)
        self._int.append(np.full(n, integer))
        self._names.extend(f"{name}_{i}" for i in range(n))
        self.num_vars += n
        return idx

    def unit(self, idx: np.ndarray) -> sp.csr_matrix:
        """Rows selecting the variables ``idx`` (an expression ``x[idx]``)."""
        n = len(idx)
        return sp.csr_matrix((np.ones(n), idx, np.arange(n + 1)), shape=(n, self.num_vars))

    def add_rows(self, A, lower, upper) -> None:
        """Add rows ``lower <= A x <= upper`` (``A`` may have fewer columns than vars)."""
        A = pad(sp.csr_matrix(A), max(A.shape[1], self.num_vars))
        m = A.shape[0]
        if m == 0:
            return
        self._rows.append(A)
        self._row_lo.append(np.broadcast_to(np.asarray(lower, dtype=np.float64), m).copy())
        self._row_hi.append(np.broadcast_to(np.asarray(upper, dtype=np.float64), m).copy())

    def build(self, objective=None, objective_const: float = 0.0, *, input_index, input_fixed,
              stats=None) -> MilpModel:
        """Freeze the model; ``objective`` is a dense vector or a 1-row sparse matrix."""
        n = self.num_vars
        rows = [pad(r, n) for r in self._rows]
        A = sp.vstack(rows, format="csr") if rows else sp.csr_matrix((0, n))
        obj = np.zeros(n)
        if objective is not None:
            dense = objective.toarray().ravel() if sp.issparse(objective) else objective
            obj[: len(dense)] = dense
        return MilpModel(
            A=A, row_lower=_cat(self._row_lo), row_upper=_cat(self._row_hi),
            lb=_cat(self._lb), ub=_cat(self._ub), integer=_cat(self._int).astype(bool),
            objective=obj, objective_const=float(objective_const),
            input_index=np.asarray(input_index), input_fixed=np.asarray(input_fixed),
            col_names=tuple(self._names), stats=dict(stats or {}),
        )
