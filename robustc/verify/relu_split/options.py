"""The options of the ReLU-split branch and bound (:mod:`robustc.verify.relu_split`)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ReluSplitOptions:
    """How the ReLU branch and bound runs (see the module docstring)."""

    min_unstable: int = 40      # verify uses it only for boxes with more unstable ReLUs
    # Which search: "chain" (dense layers, linear atoms; robustc.verify.relu_split.search),
    # "graph" (any graph the linear bounds cover; robustc.verify.relu_split.graph), or
    # "auto": the chain search for MLPs (dense layers and ReLUs only, where it was tuned:
    # MNIST-FC), the graph search for everything else (oval21 cifar_base_kw img2908: the
    # graph search proves it in 4 s, the chain search of the unrolled convolutions not
    # in 60 s).
    engine: str = "auto"
    # The graph search stops at (1 - milp_share) of the time left and leaves the rest to
    # one MILP per open case (verivital Convnet_avgpool prop_7_0.04: 5,299 unstable ReLUs,
    # no proof by splitting in 60 s, the MILP proves it in 1.2 s). Not when the probe's
    # MILPs below ran out of their budget on an open case: the search keeps the time then.
    milp_share: float = 0.2
    # Where the probe below ran out of its budget, the MILPs after the search get no time
    # (they are the probe's models again), unless the probe's last MILP had solved its root
    # relaxation and each case is one linear atom: then they get milp_share_live of it.
    # oval21 cifar_wide_kw img9214 (696 binaries): the graph search is open after 700 s
    # (175,709 domains), HiGHS alone proves it in 388 s at its root node (its cuts raise
    # the bound from -1.23 at 2 s to -0.04 at 175 s); with 0.6 of the 710 s after the probe
    # `verify` proves it in 700.4 s of its 720 (MILP 404 s), so 0.7 for a margin; the
    # search still gets 200 s there, where the oval21 rows it proves take at most 68 s.
    # resnet_4b's MILPs (1,545-2,486 binaries, 10 million nonzeros for prop_1) do not
    # reach their root LP in the probe, so their search keeps all the time.
    milp_share_live: float = 0.7
    # Before the graph search, each case's MILP gets a short try: together at most
    # milp_probe of the time left and milp_probe_cap seconds (small networks' MILPs end in
    # seconds where the search takes minutes: the README's keep_seven_wider, 3 s by MILP,
    # 415 s by the graph search; verivital Convnet_avgpool's in 0.5-1.4 s). 10 s, not 30:
    # no MILP the probe proved took over 3 s, and resnet_4b's ran 30 s of their 300 for
    # nothing (prop_13 proved in 255 s with 10; docs/verify.md).
    milp_probe: float = 0.1
    milp_probe_cap: float = 10.0
    # The probe's share where a case asks for at least k > 1 of its atoms (top-k
    # decoding: "two labels beat b"): those MILPs close slowly. On the seven dd64_pgd
    # images of benchmarks/verify64.py that reach the search, the 5 s probe proved none,
    # and the MILP alone for 30 s two (images 4 and 8, in 20.9 and 26.9 s), each slower
    # than the search (11-12 s); the search proves all seven within 60 s. A small share
    # still lets a small network's MILP answer first; docs/verify.md.
    milp_probe_topk: float = 0.02
    # Whether the graph search recomputes the unstable ReLU inputs after each new decision
    # by CROWN per domain (Crown.refine). Off by default: on oval21 cifar_wide_kw img19 it
    # bounded 1,641 domains in 40 s against 3,433 without it, and proved cifar_base_kw
    # img6638 in 31.4 s against 20.9 s (deep_kw img5168: 10.2 s against 9.9 s; one run
    # each); docs/verify.md.
    graph_refresh: bool = False
    # alpha-CROWN steps on the unstable ReLU inputs at the graph search's root (0: plain
    # CROWN intermediate bounds), within intermediate_share of the search's time (fewer
    # steps per node where all of them would not reach the last node by then);
    # robustc.compiler.crown.intermediate, docs/verify.md.
    intermediate_steps: int = 20
    intermediate_share: float = 0.2
    # Neurons tried per split by the graph search (filtered smart branching: the BaBSR
    # top candidates, each domain's children bounded once; 1: BaBSR alone); docs/verify.md.
    graph_candidates: int = 1
    # Whether the graph search first proves the rows open at its root one by one, each in
    # a tree of its own (a domain refuted when that row is), before one tree for the rest:
    # one tree for all rows splits, in every branch, the neurons each row needs (up to
    # the product of the trees' sizes where the rows need different neurons). dd64_pgd
    # image 5 (top-2, 7 rows open at the root); docs/verify.md.
    graph_rows: bool = True
    # Whether the graph search runs on the network restricted to what the box can move
    # (robustc.compiler.restrict: the crop of a layered neighbourhood, constants around it
    # folded in). dd64_pgd image 17: 1,680 of conv1's 8,192 neurons, 96 of 256 pooled.
    graph_restrict: bool = True
    # The share of the time left each row of that row phase may take (the last one: all of
    # it, unless the pair phase may follow); a row not proved in it is left to the joint tree.
    graph_row_share: float = 0.5
    # Whether a top-2 case whose rows the row phase leaves open in a few pairs gets a pair
    # phase (robustc.verify.relu_split.graph GraphSplit._by_pairs: the rows each pair
    # implies, lam m_i + (1 - lam) m_j >= 0, proved one by one), within graph_pair_share
    # of the time left. dd64_pgd image 2: labels 1 and 9 can each beat 7, not together;
    # the pair alone is open after 100 s (34,563 domains), its row for lam 0.7 is proved
    # in 4.0 s (813 domains). Where open rows form such pairs, the row phase's last row
    # gets its share (graph_row_share), then goes on if it has nearly proved the row
    # (ROW_NEARLY_DONE) or waits for the pair phase and is resumed after it; otherwise it
    # gets all the time left (dd64_pgd image 17 needs it; docs/verify.md).
    graph_pairs: bool = True
    graph_pair_share: float = 0.5
    # The graph search's domains split per round (2 * graph_batch children, fewer when
    # their open rows do not fit ROUND_ENTRIES), Adam steps per round (warm-started
    # from the parent) and the step size of beta there. On one core more, cheaper rounds
    # win: oval21 cifar_wide_kw img19, the search alone for 45 s, proved in 28.2 s with
    # (256, 5), 35.6 s with (256, 10), not with (128, 20) (1,371 domains in 40 s);
    # resnet_4b prop_1 at 300 s is proved with 5 steps, not with 10. Fewer steps need a
    # larger beta step: a new decision's multiplier starts at 0, and with 5 steps of 0.05 a
    # top-2 property of the max-pooled test CNN (tests/verify/test_graph_split.py) took
    # 413,163 domains (6 steps: open after 91,139 in 30 s) where 5 steps of 0.1 prove it
    # in 803 (10 of 0.05: 633); docs/verify.md.
    graph_batch: int = 256
    graph_iterations: int = 5
    graph_lr_beta: float = 0.1
    batch: int = 128            # the chain search's domains split per round (2 * batch children)
    iterations: int = 20        # the chain search's Adam steps on alpha and beta per round
    root_iterations: int = 60   # alpha-CROWN steps per hidden layer at the root (0: none)
    lr_alpha: float = 0.1
    lr_beta: float = 0.05       # the chain search's beta step (the graph's: graph_lr_beta)
    max_domains: int = 400_000  # give up (unknown) when the queue grows beyond this
    checks: int = 4             # candidate points handed to ``check`` per round at most
    branch_candidates: int = 5  # neurons tried per split (filtered smart branching; 1: BaBSR)
    refresh: bool = True        # recompute hidden bounds per domain after each split (CROWN)
    # Hidden bounds tightened by a branch and bound per neuron when the search has not
    # decided every case after `refine_after` of the time left (robustc.verify.relu_split.refine).
    # verify then searches the open cases again for `refine_after` of the time left, and
    # refines again with twice the rounds, up to `refine_max_rounds` (the last search gets
    # all the time left). Rounds per neuron at first (0: never refine), domains split per
    # neuron and round, and the share of the time left one refinement may use (32 rounds
    # and 70 % prove MNIST-FC 256x6 prop_12_0.05 in 300 s, 16 and 40 % do not; docs/vnnlib.md).
    refine_after: float = 0.05
    refine_rounds: int = 32
    refine_max_rounds: int = 64
    refine_parents: int = 8
    refine_share: float = 0.7
    # How the refinement's trees branch and whether they refresh hidden bounds per domain
    # (see relu_refine: BaBSR alone and no refresh measured best).
    refine_candidates: int = 1
    refine_refresh: bool = False


__all__ = ["ReluSplitOptions"]
