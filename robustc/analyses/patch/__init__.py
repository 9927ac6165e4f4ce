"""Weight patches (Goldberger et al.) and AIGENT adversarial inputs.

:mod:`~robustc.analyses.patch.algorithms` holds the algorithms on the IR (the smallest patch
of one layer, AIGENT, mod2adv); :mod:`~robustc.analyses.patch.problem` lowers a spec's
``patch`` property, runs it, writes the patched ONNX file, the CSV of changed weights and the
JSON report, and replays everything on onnxruntime.
"""
