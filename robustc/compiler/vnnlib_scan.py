"""The VNN-LIB reader's fast path: the two commands that make up nearly all of a large
file, ``(declare-const X_i Real)`` (or ``Y_j``) and an input bound ``(assert (<= X_i c))``
/ ``(assert (>= X_i c))``, recognised in a block of text by numpy operations over its
bytes, with no Python object per token or per command.

:func:`scan_block` tokenizes a block exactly as the general reader
(:func:`robustc.compiler.vnnlib.iter_sexprs`) does: whitespace is Python's ``\\s`` (for
ASCII text: tab, newline, vertical tab, form feed, carriage return, ``\\x1c``-``\\x1f`` and
space), ``;`` starts a comment up to the end of its line, ``(`` and ``)`` are tokens of
their own and every other run of characters is one atom. It splits the block into
top-level commands and marks the simple ones: a declaration whose name is ``X_`` or ``Y_``
and 1 to 9 ASCII digits, and a bound whose number matches the reader's number syntax
(at most 64 characters; converted by numpy, which gives Python's ``float`` of the text,
tested). Everything else is left to the general reader, which also reports every error;
:func:`invalid` marks the simple commands that the general reader would refuse
(a variable declared twice, a bound on a variable not declared before it, a number that
overflows), so that the caller hands those to the general reader too.

The tokens of a block (:func:`tokenize_block`) also serve the commands that are not
simple: :func:`bound_atoms` finds the input bounds ``(<= X_i c)`` / ``(>= X_i c)`` among
them (the boxes of a disjunction, ``(or (and (>= X_0 ..) (<= X_0 ..) ...) ...)``), which the
reader keeps as arrays, and the reader builds the rest of the command from the tokens.

:class:`DeclaredNames` is the set of declared variables that both readers share: a flag
per index (one byte per input of a file, not a Python object per name).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Longest number text the fast path converts (longer ones go to the general reader).
MAX_NUMBER = 64

_WS = np.zeros(256, dtype=bool)
_WS[[9, 10, 11, 12, 13, 28, 29, 30, 31, 32]] = True
_OPEN, _CLOSE, _SEMI, _NL = ord("("), ord(")"), ord(";"), ord("\n")
_LP, _RP, _ATOM = 1, 2, 3  # token kinds; each byte's class in _KIND (0: a space)
#: The kinds of tokens in :attr:`Tokens.kind`: ``(``, ``)`` and an atom.
LP, RP, ATOM = _LP, _RP, _ATOM
_KIND = np.full(256, _ATOM, dtype=np.uint8)
_KIND[_WS] = 0
_KIND[[_SEMI]] = 0  # a comment's start (the rest of its line is blanked)
_KIND[_OPEN], _KIND[_CLOSE] = _LP, _RP
_DEPTH = np.array([0, 1, -1, 0], dtype=np.int64)  # by token kind

# The number syntax of the general reader, [-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?, as a
# DFA over character classes; past a token's end its characters are class _PAD.
_DIGIT, _SIGN, _DOT, _EXP, _OTHER, _PAD = range(6)
_CLASS = np.full(256, _OTHER, dtype=np.uint8)
_CLASS[np.frombuffer(b"0123456789", np.uint8)] = _DIGIT
_CLASS[np.frombuffer(b"+-", np.uint8)] = _SIGN
_CLASS[ord(".")] = _DOT
_CLASS[np.frombuffer(b"eE", np.uint8)] = _EXP
_DEAD, _END = 10, 11
_STEP = np.full((12, 6), _DEAD, dtype=np.int8)
for _state, _moves in {0: {_SIGN: 1, _DIGIT: 2, _DOT: 5}, 1: {_DIGIT: 2, _DOT: 5},
                       2: {_DIGIT: 2, _DOT: 3, _EXP: 7}, 3: {_DIGIT: 4, _EXP: 7},
                       4: {_DIGIT: 4, _EXP: 7}, 5: {_DIGIT: 6}, 6: {_DIGIT: 6, _EXP: 7},
                       7: {_SIGN: 8, _DIGIT: 9}, 8: {_DIGIT: 9}, 9: {_DIGIT: 9}}.items():
    for _cls, _to in _moves.items():
        _STEP[_state, _cls] = _to
for _state in (2, 3, 4, 6, 9, _END):  # accepting states end at the padding
    _STEP[_state, _PAD] = _END


class DeclaredNames:
    """The declared variables ``("X", i)`` / ``("Y", j)``: ``in``, ``add`` (one name) and
    :meth:`declared`/:meth:`add_many` (arrays of indices). Indices below ``limit`` (the
    length of the file: a file cannot declare more names than it has characters) are
    flags in a growing array, larger ones a set."""

    def __init__(self, limit: int):
        self.limit = max(int(limit), 1)
        self._flags = {"X": np.zeros(0, dtype=bool), "Y": np.zeros(0, dtype=bool)}
        self._far: set = set()

    def __contains__(self, key: tuple[str, int]) -> bool:
        kind, i = key
        flags = self._flags[kind]
        return bool(flags[i]) if i < flags.size else key in self._far

    def add(self, key: tuple[str, int]) -> None:
        """Declare one name."""
        self.add_many(key[0], np.array([key[1]], dtype=np.int64))

    def declared(self, kind: str, index: np.ndarray) -> np.ndarray:
        """Whether each ``kind_index`` is declared (a bool array)."""
        flags = self._flags[kind]
        out = np.zeros(index.shape, dtype=bool)
        near = index < flags.size
        out[near] = flags[index[near]]
        if self._far and (~near).any():
            out[~near] = [(kind, int(i)) in self._far for i in index[~near]]
        return out

    def add_many(self, kind: str, index: np.ndarray) -> None:
        """Declare ``kind_i`` for each ``i`` of ``index``."""
        near = index < self.limit
        if not near.all():
            self._far.update((kind, int(i)) for i in index[~near])
            index = index[near]
        if not index.size:
            return
        flags = self._flags[kind]
        top = int(index.max()) + 1
        if top > flags.size:  # (the set holds only indices >= limit, never in the array)
            grown = np.zeros(min(self.limit, max(top, 2 * flags.size)), dtype=bool)
            grown[:flags.size] = flags
            self._flags[kind] = flags = grown
        flags[index] = True

    def indices(self, kind: str) -> np.ndarray:
        """The declared indices of ``kind``, sorted."""
        far = [i for k, i in self._far if k == kind]
        return np.sort(np.concatenate([np.flatnonzero(self._flags[kind]),
                                       np.array(far, dtype=np.int64)]))


@dataclass
class Tokens:
    """The tokens of a block (see :func:`scan_block`): ``start``/``end`` offsets and
    ``kind`` (``(``, ``)`` or an atom) of each, in order; the block's bytes and the offsets
    of its newlines; ``windows``: row ``i`` holds the :data:`MAX_NUMBER` bytes from offset
    ``i`` (a view, zeros past the block)."""

    start: np.ndarray
    end: np.ndarray
    kind: np.ndarray
    block: np.ndarray
    newlines: np.ndarray
    windows: np.ndarray


def tokenize_block(block: np.ndarray) -> Tokens:
    """The tokens of ``block`` (ASCII bytes as ``uint8``, starting between two tokens and
    outside a comment), as the general reader splits them (see the module docstring)."""
    newlines = np.flatnonzero(block == _NL)
    start, end, kind = _tokens(block, newlines)
    padded = np.concatenate([block, np.zeros(MAX_NUMBER, dtype=np.uint8)])
    windows = np.lib.stride_tricks.as_strided(padded, (block.size, MAX_NUMBER), (1, 1),
                                              writeable=False)
    return Tokens(start, end, kind, block, newlines, windows)


@dataclass
class Commands:
    """The top-level commands at the start of a block (up to the first token that starts
    none, or the first command not closed in the block), as arrays with one entry per
    command. ``kind``: 0 not simple, 1 declaration, 2 input bound; ``name_y``: a
    declaration of a ``Y_j``; ``index``: the variable's index; ``le``: a ``<=`` bound;
    ``value``: the bound's number; ``paren``: the offset of the bound's inner ``(``;
    ``end``: the offset after the command's ``)``. ``rest`` says what follows them:
    ``"end"`` (only whitespace and comments, to the end of the block), ``"open"`` (a
    command that the block does not close) or ``"stray"`` (an atom or ``)`` outside any
    command). ``newlines``: the offsets of the block's ``\\n`` characters; ``tokens``: the
    block's tokens; ``first``/``last``: each command's first and last token; ``after``: the
    token where the rest starts (the open command's ``(`` or the stray token)."""

    kind: np.ndarray
    name_y: np.ndarray
    index: np.ndarray
    le: np.ndarray
    value: np.ndarray
    paren: np.ndarray
    end: np.ndarray
    rest: str
    newlines: np.ndarray
    tokens: Tokens | None = None
    first: np.ndarray | None = None
    last: np.ndarray | None = None
    after: int = 0

    def tail(self, k: int) -> Commands:
        """The commands from the ``k``-th on (views)."""
        return Commands(self.kind[k:], self.name_y[k:], self.index[k:], self.le[k:],
                        self.value[k:], self.paren[k:], self.end[k:], self.rest, self.newlines)


def scan_block(block: np.ndarray) -> Commands:
    """The commands at the start of ``block`` (ASCII bytes as ``uint8``; a non-ASCII
    character may stand as one ``?``, which no simple command contains) that begins
    between two commands; see :class:`Commands`."""
    tokens = tokenize_block(block)
    start, end, kind, windows = tokens.start, tokens.end, tokens.kind, tokens.windows
    depth = np.cumsum(_DEPTH[kind])
    before = depth - (kind == _LP) + (kind == _RP)
    stray = np.flatnonzero((depth < 0) | ((kind == _ATOM) & (before == 0)))
    stop = int(stray[0]) if stray.size else kind.size  # tokens before the first stray one
    firsts = np.flatnonzero((kind[:stop] == _LP) & (before[:stop] == 0))
    lasts = np.flatnonzero((kind[:stop] == _RP) & (depth[:stop] == 0))
    m = lasts.size
    rest = "stray" if firsts.size == m and stop < kind.size else \
        "open" if firsts.size > m else "end"
    cmds = _simple(windows, start, end, kind, firsts[:m], lasts)
    cmds.end = end[lasts]
    cmds.rest, cmds.newlines, cmds.tokens = rest, tokens.newlines, tokens
    cmds.first, cmds.last = firsts[:m], lasts
    cmds.after = int(firsts[m]) if rest == "open" else stop
    return cmds


def _tokens(block: np.ndarray, newlines: np.ndarray) -> tuple:
    """``(start, end, kind)`` of every token of ``block``, in order."""
    kind = _KIND[block]
    semis = np.flatnonzero(block == _SEMI)
    if semis.size:  # a comment runs from ';' to the end of its line
        stops = np.searchsorted(newlines, semis)
        ends = np.append(newlines, block.size)[stops]
        edge = np.zeros(block.size + 1, dtype=np.int32)
        np.add.at(edge, semis, 1)
        np.add.at(edge, ends, -1)
        kind[np.cumsum(edge[:-1]) > 0] = 0
    atom = kind == _ATOM
    first = kind != 0  # a token starts here: a parenthesis, or an atom not continued
    first[1:] &= ~(atom[1:] & atom[:-1])
    start = np.flatnonzero(first)
    last = atom.copy()  # an atom ends here
    last[:-1] &= ~atom[1:]
    kind = kind[start]
    end = start + 1
    end[kind == _ATOM] = np.flatnonzero(last) + 1
    return start, end, kind


def _simple(block, start, end, kind, firsts, lasts) -> Commands:
    """Which of the commands (token ``firsts[c]`` to ``lasts[c]``) are simple, with their
    fields (``block``: the windows of :func:`scan_block`)."""
    m = firsts.size
    ntok = lasts - firsts + 1
    out = Commands(np.zeros(m, np.int8), np.zeros(m, bool), np.full(m, -1, np.int64),
                   np.zeros(m, bool), np.full(m, np.nan), np.zeros(m, np.int64),
                   np.zeros(m, np.int64), "", np.zeros(0, np.int64))
    if not m:
        return out
    f = firsts
    # ( declare-const NAME Real ): 5 tokens, the inner three atoms
    decl = np.flatnonzero(ntok == 5)
    decl = decl[(kind[f[decl] + 1] == _ATOM) & (kind[f[decl] + 2] == _ATOM)
                & (kind[f[decl] + 3] == _ATOM)]
    decl = decl[_is_word(block, start, end, f[decl] + 1, b"declare-const")
                & _is_word(block, start, end, f[decl] + 3, b"Real")]
    name_x = _is_name(block, start, end, f[decl] + 2, b"X")
    name_y = _is_name(block, start, end, f[decl] + 2, b"Y")
    decl = decl[name_x | name_y]
    out.name_y[decl] = name_y[name_x | name_y]
    out.index[decl] = _digits(block, start[f[decl] + 2] + 2, end[f[decl] + 2])
    out.kind[decl] = 1
    # ( assert ( OP X_i NUMBER ) ): 8 tokens
    bound = np.flatnonzero(ntok == 8)
    shape = [_ATOM, _LP, _ATOM, _ATOM, _ATOM, _RP]
    bound = bound[np.all([kind[f[bound] + 1 + j] == k for j, k in enumerate(shape)], axis=0)]
    le = _is_word(block, start, end, f[bound] + 3, b"<=")
    bound = bound[_is_word(block, start, end, f[bound] + 1, b"assert")
                  & (le | _is_word(block, start, end, f[bound] + 3, b">="))
                  & _is_name(block, start, end, f[bound] + 4, b"X")]
    value, ok = _numbers(block, start[f[bound] + 5], end[f[bound] + 5])
    bound = bound[ok]
    out.le[bound] = _is_word(block, start, end, f[bound] + 3, b"<=")
    out.index[bound] = _digits(block, start[f[bound] + 4] + 2, end[f[bound] + 4])
    out.value[bound] = value
    out.paren[bound] = start[f[bound] + 2]
    out.kind[bound] = 2
    return out


def _chars(windows: np.ndarray, first: np.ndarray, width: int) -> np.ndarray:
    """``(n, width)``: the bytes at ``first + 0 .. width - 1`` (0 past the block)."""
    return windows[first, :width]


def _is_word(windows, start, end, tok, word: bytes) -> np.ndarray:
    """Whether each token ``tok`` is ``word`` (at most 16 bytes): its first bytes, read as
    two 64-bit words under a mask of the word's length, and its length."""
    s = start[tok]
    width = 8 if len(word) <= 8 else 16
    mask = np.frombuffer(b"\xff" * len(word) + b"\0" * (width - len(word)), np.uint64)
    want = np.frombuffer(word + b"\0" * (width - len(word)), np.uint64)
    got = np.ascontiguousarray(_chars(windows, s, width)).view(np.uint64)
    return (end[tok] - s == len(word)) & ((got & mask) == want).all(1)


def is_word(tokens: Tokens, tok: np.ndarray, word: bytes) -> np.ndarray:
    """Whether each token ``tok`` of a block is the atom ``word`` (at most 16 bytes)."""
    return (tokens.kind[tok] == _ATOM) & _is_word(tokens.windows, tokens.start, tokens.end,
                                                  tok, word)


def _is_name(windows, start, end, tok, letter: bytes) -> np.ndarray:
    """Whether each token ``tok`` is ``letter`` + ``_`` + 1 to 9 ASCII digits."""
    s, n = start[tok], end[tok] - start[tok]
    head = _chars(windows, s, 11)
    digit = (head >= ord("0")) & (head <= ord("9")) | (np.arange(11) >= n[:, None])
    return (n >= 3) & (n <= 11) & (head[:, 0] == letter[0]) & (head[:, 1] == ord("_")) & \
        digit[:, 2:].all(1)


def _digits(windows, first: np.ndarray, stop: np.ndarray) -> np.ndarray:
    """The integers written by the (at most 9) ASCII digits ``block[first:stop]``."""
    digits = _chars(windows, first, 9).astype(np.int64) - ord("0")
    value = np.zeros(first.size, dtype=np.int64)
    for j in range(9):
        value = np.where(j < stop - first, value * 10 + digits[:, j], value)
    return value


#: The number DFA as one flat table: next state = _FLAT[state * 6 + class].
_FLAT = _STEP.astype(np.uint8).ravel()


def _numbers(windows, first: np.ndarray, stop: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(values, ok)``: the numbers ``block[first:stop]`` (where ``ok``: the text is a
    number of the reader's syntax, at most :data:`MAX_NUMBER` characters long)."""
    n = stop - first
    if not first.size:
        return np.zeros(0), np.zeros(0, dtype=bool)
    width = int(min(n.max(), MAX_NUMBER))
    chars = np.array(_chars(windows, first, width))
    past = np.arange(width) >= n[:, None]
    classes = np.where(past, np.uint8(_PAD), _CLASS[chars]).T.copy()  # (width, n)
    state = np.zeros(first.size, dtype=np.uint8)
    for column in classes:
        state = _FLAT[state * np.uint8(6) + column]
    ok = ((state == _END) | np.isin(state, (2, 3, 4, 6, 9))) & (n <= MAX_NUMBER)
    chars[past] = 0
    text = np.ascontiguousarray(chars[ok]).view(f"S{width}").ravel()
    with np.errstate(over="ignore"):
        return text.astype(np.float64), ok


def invalid(cmds: Commands, names: DeclaredNames) -> np.ndarray:
    """Which commands are not simple or would be refused by the general reader given the
    names declared before the block (a name declared twice, a bound on a name not declared
    before it, a number that overflows to infinity): a bool array."""
    bad = cmds.kind == 0
    decl = np.flatnonzero(cmds.kind == 1)
    bound = np.flatnonzero(cmds.kind == 2)
    key = cmds.index[decl] * 2 + cmds.name_y[decl]
    order = np.argsort(key, kind="stable")
    again = np.zeros(decl.size, dtype=bool)  # declared earlier in the block
    again[order[1:]] = key[order[1:]] == key[order[:-1]]
    for kind, is_y in (("X", False), ("Y", True)):
        mine = cmds.name_y[decl] == is_y
        again[mine] |= names.declared(kind, cmds.index[decl][mine])
    bad[decl[again]] = True
    # a bound needs its X_i declared before the block or by an earlier command in it
    firsts = decl[~again & ~cmds.name_y[decl]]
    sorted_at = np.argsort(cmds.index[firsts])
    known, where = cmds.index[firsts][sorted_at], firsts[sorted_at]
    idx = cmds.index[bound]
    earlier = np.zeros(bound.size, dtype=bool)
    if known.size:
        slot = np.minimum(np.searchsorted(known, idx), known.size - 1)
        earlier = (known[slot] == idx) & (where[slot] < bound)
    ok = (names.declared("X", idx) | earlier) & np.isfinite(cmds.value[bound])
    bad[bound[~ok]] = True
    return bad


def comparisons(tokens: Tokens, t0: int, t1: int, depth: int) -> np.ndarray:
    """The comparisons of two atoms, ``(<= A B)`` / ``(>= A B)``, among the tokens ``t0`` to
    ``t1 - 1`` of a block that lie inside a list (``depth``: the lists open before token
    ``t0``): the token index of each one's ``(``, in order."""
    kind = tokens.kind[t0:t1]
    if kind.size < 5:
        return np.zeros(0, dtype=np.int64)
    at = np.flatnonzero((kind[:-4] == _LP) & (kind[1:-3] == _ATOM) & (kind[2:-2] == _ATOM)
                        & (kind[3:-1] == _ATOM) & (kind[4:] == _RP))
    level = depth + np.cumsum(_DEPTH[kind])  # lists open after each token
    at = at[level[at] >= 2] + t0  # inside a list: one open before its own '('
    w, start, end = tokens.windows, tokens.start, tokens.end
    return at[_is_word(w, start, end, at + 1, b"<=") | _is_word(w, start, end, at + 1, b">=")]


def bound_atoms(tokens: Tokens, t0: int, t1: int, depth: int) -> tuple:
    """The input bounds ``(<= X_i NUMBER)`` / ``(>= X_i NUMBER)`` among the tokens ``t0`` to
    ``t1 - 1`` of a block that lie inside a list (``depth``: the lists open before token
    ``t0``), with names and numbers as in simple commands: ``(paren, le, index, value)``,
    ``paren`` the token index of each one's ``(``, in order."""
    return bound_atoms_of(tokens, comparisons(tokens, t0, t1, depth))


def bound_atoms_of(tokens: Tokens, at: np.ndarray) -> tuple:
    """:func:`bound_atoms` among the comparisons whose ``(`` are the tokens ``at``."""
    w, start, end = tokens.windows, tokens.start, tokens.end
    at = at[_is_name(w, start, end, at + 2, b"X")]
    value, ok = _numbers(w, start[at + 3], end[at + 3])
    at = at[ok]
    return (at, _is_word(w, start, end, at + 1, b"<="), _digits(w, start[at + 2] + 2, end[at + 2]),
            value)


def _parents(kind: np.ndarray, after: np.ndarray, before: np.ndarray, top: int) -> np.ndarray:
    """The token of each token's enclosing ``(`` (-1 at depth 0), for depths up to ``top``."""
    parent = np.full(kind.size, -1, dtype=np.int64)
    for level in range(1, top + 1):
        opens = np.flatnonzero((kind == _LP) & (after == level))
        here = np.flatnonzero(before == level)
        if here.size:
            parent[here] = opens[np.searchsorted(opens, here) - 1]
    return parent


def _children(kind: np.ndarray, before: np.ndarray, parent: np.ndarray) -> tuple:
    """``(cidx, nitems)``: each item's (atom's or list's) place among its list's items (0:
    the head) and each ``(``'s number of items (0 for other tokens)."""
    items = np.flatnonzero((kind != _RP) & (before >= 1))
    items = items[np.argsort(parent[items], kind="stable")]
    par = parent[items]
    new = np.ones(items.size, dtype=bool)
    new[1:] = par[1:] != par[:-1]
    first = np.flatnonzero(new)
    cidx = np.zeros(kind.size, dtype=np.int64)
    cidx[items] = np.arange(items.size) - first[np.cumsum(new) - 1]
    nitems = np.zeros(kind.size, dtype=np.int64)
    nitems[par[first]] = np.diff(np.append(first, items.size))
    return cidx, nitems


@dataclass
class Clauses:
    """Groups of output comparisons read by :func:`clause_groups`: ``sizes`` (comparisons
    per group) and ``opens`` (the token of each group's ``(``); per comparison the token of
    its ``(`` (``paren``), its number of outputs (``count``) and ``const``; per output of a
    comparison, in order, ``index`` and ``coeff``: each comparison ``(<= A B)`` is ``B - A
    >= 0`` as the general reader makes it (``sum(coeff * Y_index) + const >= 0``)."""

    sizes: np.ndarray
    opens: np.ndarray
    paren: np.ndarray
    count: np.ndarray
    const: np.ndarray
    index: np.ndarray
    coeff: np.ndarray


def clause_groups(tokens: Tokens, t1: int, inner: bytes, names: DeclaredNames) -> Clauses | None:
    """The groups ``(INNER C ...)`` that make up the tokens ``0 .. t1 - 1`` of a block
    (``INNER``: ``and`` or ``or``), each ``C`` an output comparison ``(<= S S)`` / ``(>= S
    S)`` whose sides ``S`` are a leaf, ``(* L L)``, or ``(+ T ...)`` / ``(- T ...)`` of
    leaves and ``(* L L)``; a leaf a declared ``Y_j`` or a finite number, each ``*`` of one
    ``Y_j`` and one number. Every output occurs once in a comparison with a non-zero
    coefficient, a side holds at most two numbers (so the sums are the general reader's,
    bit for bit) and the constant is finite. None when anything differs (the general
    reader then reads the command and finds any error)."""
    kind = tokens.kind[:t1]
    after = np.cumsum(_DEPTH[kind])
    before = after - (kind == _LP) + (kind == _RP)
    lp, atom = kind == _LP, kind == _ATOM
    if not t1 or (before < 0).any() or (atom & (before == 0)).any() or \
            (lp & (before >= 4)).any():
        return None
    parent = _parents(kind, after, before, 4)
    cidx, nitems = _children(kind, before, parent)
    w, st, en = tokens.windows, tokens.start, tokens.end
    lps = np.flatnonzero(lp)
    if (kind[lps + 1] != _ATOM).any():
        return None
    level = before[lps]
    groups, cmps, sides, inside = (lps[level == k] for k in range(4))
    if not _is_word(w, st, en, groups + 1, inner).all() or (nitems[groups] < 2).any() or \
            (kind[(before == 1) & (cidx >= 1)] != _LP).any():
        return None
    le = _is_word(w, st, en, cmps + 1, b"<=")
    if not (le | _is_word(w, st, en, cmps + 1, b">=")).all() or (nitems[cmps] != 3).any():
        return None
    minus = _is_word(w, st, en, sides + 1, b"-")
    star = _is_word(w, st, en, sides + 1, b"*")
    if not (minus | star | _is_word(w, st, en, sides + 1, b"+")).all() or \
            (nitems[sides] < 2).any() or (nitems[sides[star]] != 3).any():
        return None
    is_star = np.zeros(t1, dtype=bool)
    is_star[sides[star]] = True
    if is_star[parent[inside]].any() or not _is_word(w, st, en, inside + 1, b"*").all() or \
            (nitems[inside] != 3).any():
        return None
    is_star[inside] = True
    return _clause_leaves(tokens, t1, groups, cmps, le, sides[minus], is_star, parent, cidx,
                          nitems, before, names)


def _clause_leaves(tokens, t1, groups, cmps, le, minus_lists, is_star, parent, cidx, nitems,
                   before, names) -> Clauses | None:
    """:func:`clause_groups` once the lists are checked: the leaves' coefficients and the
    comparisons' constants."""
    w, st, en, kind = tokens.windows, tokens.start, tokens.end, tokens.kind[:t1]
    leaves = np.flatnonzero((kind == _ATOM) & (before >= 2) & (cidx >= 1))
    is_y = _is_name(w, st, en, leaves, b"Y")
    ys, nums = leaves[is_y], leaves[~is_y]
    yidx = _digits(w, st[ys] + 2, en[ys])
    value, ok = _numbers(w, st[nums], en[nums])
    if not ok.all() or not np.isfinite(value).all() or not names.declared("Y", yidx).all():
        return None
    # each '*': one output and one number (the factor)
    in_star = is_star[parent[leaves]]
    count = np.bincount(parent[ys[in_star[is_y]]], minlength=t1)
    if (count[is_star] != 1).any():
        return None
    factor = np.ones(t1)
    factor[parent[nums[in_star[~is_y]]]] = value[in_star[~is_y]]
    # the term (a leaf, or its '*'), its sign in a '-', its side and the side's sign
    is_minus, is_cmp, is_le = (np.zeros(t1, dtype=bool) for _ in range(3))
    is_minus[minus_lists], is_cmp[cmps] = True, True
    is_le[cmps] = le
    term = np.where(in_star, parent[leaves], leaves)
    tpar = parent[term]
    neg = is_minus[tpar] & ((cidx[term] >= 2) | (nitems[tpar] == 2))
    side = np.where(is_cmp[tpar], term, tpar)
    cmp = parent[side]
    big = np.where(is_le[cmp], cidx[side] == 2, cidx[side] == 1)
    coeff = np.where(in_star[is_y], factor[parent[ys]], 1.0)  # sign flips are exact
    coeff = np.where(neg[is_y], -coeff, coeff)
    coeff = np.where(big[is_y], coeff, -coeff)
    free = ~in_star[~is_y]  # the numbers outside a '*'
    const = _clause_consts(t1, cmps, value[free], neg[~is_y][free], side[~is_y][free], parent,
                           cidx, before, kind, is_le)
    rank = np.zeros(t1, dtype=np.int64)
    rank[cmps] = np.arange(cmps.size)
    which = rank[cmp[is_y]]
    per = np.bincount(which, minlength=cmps.size)
    key = np.sort(which * (int(yidx.max(initial=0)) + 1) + yidx)
    if const is None or (per == 0).any() or (coeff == 0).any() or (key[1:] == key[:-1]).any():
        return None
    return Clauses(nitems[groups] - 1, groups, cmps, per, const, yidx, coeff)


def _clause_consts(t1, cmps, value, neg, side, parent, cidx, before, kind, is_le):
    """Each comparison's constant from its numbers outside a ``*`` (``value``, negated where
    ``neg``; ``side``: the side each is in), summed as the general reader sums them: per
    side ``(0 + a) + b``, then ``(0 + big) + -small``; None when a side has more than two
    numbers or a constant overflows."""
    new = np.ones(side.size, dtype=bool)
    new[1:] = side[1:] != side[:-1]
    place = np.arange(side.size) - np.flatnonzero(new)[np.cumsum(new) - 1]
    if (place >= 2).any():
        return None
    term = np.where(neg, -value, value)
    sums = np.zeros(t1)
    sums[side[place == 0]] = 0.0 + term[place == 0]
    sums[side[place == 1]] = sums[side[place == 1]] + term[place == 1]
    items = np.flatnonzero((kind != _RP) & (before == 2))  # the sides, in order
    first, second = np.zeros(t1, dtype=np.int64), np.zeros(t1, dtype=np.int64)
    first[parent[items[cidx[items] == 1]]] = items[cidx[items] == 1]
    second[parent[items[cidx[items] == 2]]] = items[cidx[items] == 2]
    lhs, rhs = sums[first[cmps]], sums[second[cmps]]
    big = np.where(is_le[cmps], rhs, lhs)
    small = np.where(is_le[cmps], lhs, rhs)
    with np.errstate(over="ignore", invalid="ignore"):
        const = (0.0 + big) + -small
    return const if np.isfinite(const).all() else None


__all__ = ["DeclaredNames", "Commands", "Tokens", "scan_block", "tokenize_block", "invalid",
           "bound_atoms", "bound_atoms_of", "comparisons", "Clauses", "clause_groups", "is_word",
           "MAX_NUMBER", "LP", "RP", "ATOM"]
