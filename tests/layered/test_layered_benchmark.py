"""benchmarks/layered.py without a verification run: the choice of test images (``--skip``)
and the combined report of several files (``--report A.json B.json docs.md``).

Oracles: a brute-force filter of the indices for ``choose``; onnxruntime's top 2 for the
images the 64x64 run picks; hand-computed ratios for the combined summary.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from argparse import Namespace
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("layered_benchmark",
                                               ROOT / "benchmarks" / "layered.py")
layered = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(layered)


def test_choose_is_the_brute_force_slice_and_skip_continues_it():
    rng = np.random.default_rng(0)
    for _ in range(200):
        total = int(rng.integers(0, 30))
        keep = rng.random(total) < rng.random()
        count, skip = int(rng.integers(0, 8)), int(rng.integers(0, 8))
        calls = []

        def kept(i, keep=keep, calls=calls):
            calls.append(i)
            return bool(keep[i])

        got = layered.choose(total, kept, count, skip)
        assert got == [i for i in range(total) if keep[i]][skip:skip + count]
        # kept() is asked in index order and never past the last index needed
        assert calls == sorted(calls) and len(set(calls)) == len(calls)
        if len(got) == count and count:
            assert max(calls) == got[-1]
        # --skip 3 --images 3 continues --images 3: together they are --images 6
        first = layered.choose(total, lambda i, k=keep: bool(k[i]), skip)
        assert first + got == layered.choose(total, lambda i, k=keep: bool(k[i]), skip + count)


def test_choose_refuses_negative_counts():
    with pytest.raises(ValueError, match="--images and --skip must be >= 0"):
        layered.choose(5, lambda i: True, 2, -1)


def test_64x64_images_skip_keeps_the_first_images_and_onnxruntime_agrees():
    ort = pytest.importorskip("onnxruntime")
    from robustc.runtime.datasets import LARGE, double_digits, double_digits_info

    models = list(layered.MODELS_BY_SCALE[64])
    args = Namespace(scale=64, models=models, images=3, skip=0)
    first = [p["index"] for p in layered._problems(args)]
    later = layered._problems(Namespace(**{**vars(args), "skip": 3}))
    assert [p["index"] for p in layered._problems(Namespace(**{**vars(args), "images": 6}))] \
        == first + [p["index"] for p in later]
    assert first == [0, 1, 2]  # the images of docs/layered.md's 64x64 table
    images, _, _ = double_digits("test", layout=LARGE)
    classes = double_digits_info("test", layout=LARGE).classes
    sessions = [ort.InferenceSession(str(ROOT / "examples" / "models" / f"{m}.onnx"))
                for m in models]

    def top2_everywhere(i):
        x = images[i][None].astype(np.float32)
        return all(int(classes[i][1]) in np.argsort(s.run(None, {s.get_inputs()[0].name: x})[0]
                                                     .reshape(-1))[-2:] for s in sessions)

    chosen = first + [p["index"] for p in later]
    assert all(top2_everywhere(i) for i in chosen)
    assert not any(top2_everywhere(i) for i in range(chosen[-1]) if i not in chosen)
    for p in later:
        i = p["index"]
        assert p["target"] == int(classes[i][1]) and p["perturbed"] == int(classes[i][0])
        np.testing.assert_array_equal(p["x0"][0], images[i])


def _run(size, calls, seconds, **more):
    return {"weighted_size": size, "verifier_calls": calls, "verifier_s": seconds, **more}


def _saved(rows, partial=False):
    return {"args": {"scale": 64}, "rows": rows, **({"partial": True} if partial else {})}


def _row(model, image, naive, fixed, certified=True):
    extra = {"eps": [0.01, 0.02], "wall_s": 1.0,
             "profile": {"robust": {"count": 2, "seconds": 1.0}}}
    return {"model": model, "image": image,
            "runs": {"naive": _run(*naive, certified=True, **extra),
                     "fixed": _run(*fixed, certified=certified, **extra)}}


TABLE = """Some text.

| model | image | naive size | calls | verifier s | fixed size | calls | verifier s |
|---|---|---|---|---|---|---|---|
| net_a | 0 | 0.020 | 20 | 100.0 | 0.040 | 4 | 10.0 |
| net_a | 1 | 0.500 | 20 | 100.0 | 0.100 | 4 | 50.0 |
| net_b | 0 | 0.030 | 10 | 10.0 | 0.030 | 2 | 1.0 |

| method | size / naive (median) |
|---|---|
| fixed | 2.00 |
"""


def test_table_rows_read_back_what_markdown_prints():
    rows = layered.table_rows(TABLE, source="doc.md")
    assert [(r["model"], r["image"], r["source"]) for r in rows] == [
        ("net_a", 0, "doc.md"), ("net_a", 1, "doc.md"), ("net_b", 0, "doc.md")]
    assert rows[1]["runs"]["fixed"] == _run(0.1, 4, 50.0)
    again = layered.table_rows(layered.markdown({"rows": rows}))
    assert [r["runs"] for r in again] == [r["runs"] for r in rows]


def test_table_rows_name_the_line_of_a_broken_row():
    broken = TABLE.replace("| net_a | 1 | 0.500 | 20 |", "| net_a | 1 | 0.500 |")
    with pytest.raises(ValueError, match=r"doc\.md:6: 7 cells, the header has 8"):
        layered.table_rows(broken, source="doc.md")
    with pytest.raises(ValueError, match=r"doc\.md:5: not a per-run row"):
        layered.table_rows(TABLE.replace("| 20 | 100.0 | 0.040", "| many | 100.0 | 0.040", 1),
                           source="doc.md")


def test_combine_json_rows_win_and_the_summary_covers_all_rows(tmp_path):
    doc = tmp_path / "doc.md"
    doc.write_text(TABLE)
    saved = tmp_path / "run.json"
    # net_a image 1 re-run (replaces the table's row), image 2 new; net_c has no JSON rows
    saved.write_text(json.dumps(_saved([_row("net_a", 2, (0.1, 10, 100.0), (0.3, 2, 5.0)),
                                        _row("net_a", 1, (0.1, 10, 100.0), (0.05, 2, 30.0),
                                             certified=False)], partial=True)))
    data = layered.combine([str(saved), str(doc)])
    assert [(r["model"], r["image"], r.get("source")) for r in data["rows"]] == [
        ("net_a", 0, str(doc)), ("net_a", 1, None), ("net_a", 2, None)]  # net_b: no JSON
    summary = layered._summary(data["rows"])
    # size ratios 2.0, 0.5, 3.0; time ratios 0.1, 0.3, 0.05
    assert summary["fixed"]["median_size_ratio"] == pytest.approx(2.0)
    assert summary["fixed"]["median_verifier_time_ratio"] == pytest.approx(0.1)
    assert summary["fixed"]["total_verifier_time_ratio"] == pytest.approx(45.0 / 300.0)
    assert summary["fixed"]["share_both_goals"] == pytest.approx(2 / 3)
    assert summary["fixed"]["total_wall_time_ratio"] is None  # the table row has no wall time
    assert summary["profiled_runs"] == 2
    assert summary["net_a"]["fixed"]["eps_runs"] == 2
    text = layered.markdown(data)
    assert "| fixed | 2.00 | 0.100, 0.150, 0.150 |" in text
    assert "| 2 of 3 | 2 of 3 | 2 of 3 | n/a |" in text
    assert f"1 of 3 rows read back from a Markdown table ({doc}" in text
    assert "re-verified robust by the complete verifier: 3 of 4 recorded runs " \
           "(not: net_a 1 fixed)" in text
    assert "Partial:" in text


def test_report_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"rows": 3}))
    script = str(ROOT / "benchmarks" / "layered.py")
    for path, message in ((bad, "bad.json: not JSON"),
                          (other, "other.json: not a saved run of this benchmark"),
                          (tmp_path / "missing.json", "missing.json")):
        out = subprocess.run([sys.executable, script, "--report", str(path)], cwd=ROOT,
                             capture_output=True, text=True)
        assert out.returncode != 0 and message in out.stderr
        assert "Traceback" not in out.stderr
    mixed = tmp_path / "mixed.md"
    mixed.write_text(TABLE + "\n| model | image | naive size | calls | verifier s |\n|---|---|"
                     "---|---|---|\n| net_c | 0 | 0.1 | 3 | 1.0 |\n")
    with pytest.raises(ValueError, match=r"net_c image 0: methods \['naive'\]"):
        layered.combine([str(mixed)])
