"""Data sets in specs: a property over a data set expands to one instance per element.

The oracle is the same properties written out by hand, one input, mask and label per
image (labels from ``examples/samples/samples.json``, not from the data set's labels
file): the expansion must give the same input boxes, conditions and verdicts.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from robustc import specs
from robustc.compiler.spec_lower import select_properties, verify_problems
from robustc.errors import SpecError
from robustc.specs import ast as A

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SAMPLES = json.loads((EXAMPLES / "samples" / "samples.json").read_text())["double_digits"]
DIGIT_B = {s["name"]: s["digit_b"] for s in SAMPLES if s["layout"] == "16x24"}
SMALL = "[0.08, 0.06, 0.04, 0.02, 0.01]"  # bounds prove some images, not all
LARGE = "[0.3, 0.2, 0.1, 0.05, 0.02]"     # PGD breaks image 0
HEAD = """
network plain = onnx({net})
labels digits = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]
decode plain as multilabel(logit > 0) over digits
"""


def _data_spec(source: str, mask: str, net: str = '"models/mlc_plain.onnx"') -> str:
    return HEAD.format(net=net) + f"""
input x = {source} in [0, 1]
region digit_a = mask({mask})
verify small on plain:
    forall x' in layered(x, rings(digit_a, chebyshev, 4), eps={SMALL}): present(x.label)
verify large on plain:
    forall x' in layered(x, rings(digit_a, chebyshev, 4), eps={LARGE}): present(x.label)
"""


def _by_hand(names: list[str]) -> str:
    """Every image's input, mask and properties written out (small_0.., then large_0..)."""
    text = HEAD.format(net='"models/mlc_plain.onnx"')
    for i, stem in enumerate(names):
        text += f"""
input x{i} = npy("samples/{stem}.npy") in [0, 1]
region a{i} = mask("samples/{stem}_mask_a.npy")
"""
    for kind, eps in (("small", SMALL), ("large", LARGE)):
        for i, stem in enumerate(names):
            text += f"""
verify {kind}_{i} on plain:
    forall x' in layered(x{i}, rings(a{i}, chebyshev, 4), eps={eps}): present("{DIGIT_B[stem]}")
"""
    return text


def _load(text: str, source_dir: Path = EXAMPLES, *, networks: bool = True) -> A.Spec:
    resolved = specs.check(specs.parse_text(text, filename="t.rspec", source_dir=str(source_dir)))
    if networks:
        specs.check_networks(resolved)
    return resolved


FOLDER = 'dataset(folder("samples", "dd_?.npy", grey), labels="datasets/dd_digit_b.csv")'
STEMS = [f"dd_{i}" for i in range(6)]


def _same_problems(expanded, by_hand) -> None:
    assert len(expanded) == len(by_hand)
    for got, want in zip(expanded, by_hand, strict=True):
        (box,), (wbox,) = got.prop.boxes, want.prop.boxes
        np.testing.assert_array_equal(box.lower, wbox.lower)
        np.testing.assert_array_equal(box.upper, wbox.upper)
        assert pickle.dumps(got.prop.condition) == pickle.dumps(want.prop.condition)
        assert got.onnx_paths == want.onnx_paths


def test_folder_expands_to_the_properties_written_by_hand():
    spec = _load(_data_spec(FOLDER, '"samples/{stem}_mask_a.npy"'))
    assert [p.name for p in spec.properties] == [f"{k}[{i}]" for k in ("small", "large")
                                                 for i in range(6)]
    assert [i.stem for i in spec.instances[:6]] == STEMS
    hand = _load(_by_hand(STEMS))
    _same_problems(verify_problems(spec), verify_problems(hand))


def test_stacked_npy_with_index_masks_and_npy_labels(tmp_path):
    stack = np.concatenate([np.load(EXAMPLES / "samples" / f"{s}.npy") for s in STEMS])
    np.save(tmp_path / "stack.npy", stack)  # (6, 1, 16, 24)
    np.save(tmp_path / "labels.npy", np.array([DIGIT_B[s] for s in STEMS]))
    source = 'dataset(npy("stack.npy"), labels="labels.npy")'
    text = _data_spec(source, f'external "{EXAMPLES}/samples/dd_{{i}}_mask_a.npy"',
                      net=f'external "{EXAMPLES}/models/mlc_plain.onnx"')
    spec = _load(text, tmp_path)
    assert [i.stem for i in spec.instances[:6]] == [str(i) for i in range(6)]
    hand = _load(_by_hand(STEMS))
    _same_problems(verify_problems(spec), verify_problems(hand))


def test_same_verdicts_as_by_hand():
    """Verdicts of the expanded properties and of the hand-written ones, decided the same
    deterministic way (PGD, then bounds): some robust, some unknown, one not robust."""
    from robustc.verify import VerifyOptions, verify

    spec = specs.select_elements(_load(_data_spec(FOLDER, '"samples/{stem}_mask_a.npy"')),
                                 ["0:3"])
    hand = _load(_by_hand(STEMS[:3]))
    options = VerifyOptions(strategy="bounds", threads=1, seed=0)
    got = [verify(p, options).verdict for p in verify_problems(spec)]
    want = [verify(p, options).verdict for p in verify_problems(hand)]
    assert got == want
    assert {"robust", "not_robust"} <= set(got)


def test_maximize_rings_grow_around_each_elements_own_object():
    """A maximize property over the data set: each instance's rings are those of the
    element's own mask (against rings computed here from the mask files, by dilation)."""
    from scipy.ndimage import binary_dilation

    from robustc.analyses.maximize import layered_problem
    from robustc.compiler.spec_lower import SpecContext

    text = HEAD.format(net='"models/mlc_plain.onnx"') + f"""
input x = {FOLDER} in [0, 1]
region digit_a = mask("samples/{{stem}}_mask_a.npy")
maximize wide on plain:
    layered(x, rings(digit_a, chebyshev, 2)) such that present(x.label)
    method naive
"""
    spec = _load(text)
    ctx = SpecContext(spec)
    for i, prop in enumerate(spec.properties):
        problem = layered_problem(ctx, prop)
        obj = np.load(EXAMPLES / "samples" / f"dd_{i}_mask_a.npy")
        square = np.ones((3, 3), dtype=bool)
        one, two = binary_dilation(obj, square), binary_dilation(obj, square, iterations=2)
        want = np.select([obj, one, two], [0, 1, 2], default=-1)
        np.testing.assert_array_equal(problem.rings, want)
        np.testing.assert_array_equal(problem.x0.ravel(),
                                      np.load(EXAMPLES / "samples" / f"dd_{i}.npy").ravel())
        assert problem.meta["reference_set"] and str(DIGIT_B[f"dd_{i}"]) in \
            problem.meta["reference_set"]


def test_a_folder_of_pngs_in_natural_order(tmp_path):
    """PNG elements load as png(..., grey) does; img2 comes before img10."""
    from PIL import Image

    (tmp_path / "pngs").mkdir()
    order = [2, 10, 1]  # file numbers; natural order is 1, 2, 10
    for n, i in zip(order, range(3), strict=True):
        pixels = np.load(EXAMPLES / "samples" / f"dd_{i}.npy")[0, 0]
        Image.fromarray((pixels * 255).round().astype(np.uint8)).save(
            tmp_path / "pngs" / f"img{n}.png")
    net = f'external "{EXAMPLES}/models/mlc_plain.onnx"'
    body = "verify k{i}: forall x' in linf({x}, 0.02): argmax == 7\n"
    data = f'network plain = onnx({net})\ninput x = dataset(folder("pngs", grey))\n' + \
        body.format(i="", x="x")
    hand = f"network plain = onnx({net})\n" + "".join(
        f'input x{n} = png("pngs/img{n}.png", grey)\n' for n in sorted(order)) + "".join(
        body.format(i=f"_{n}", x=f"x{n}") for n in sorted(order))
    spec = _load(data, tmp_path)
    assert [i.stem for i in spec.instances] == ["img1", "img2", "img10"]
    _same_problems(verify_problems(spec), verify_problems(_load(hand, tmp_path)))


def test_format_round_trip_of_data_set_syntax():
    text = _data_spec(FOLDER, '"samples/{stem}_mask_a.npy"') + """
input y = dataset(npy("s.npy"))
input z = dataset(folder("imgs", rgb), labels=external "/data/labels.txt")
param t = x.label
"""
    spec = specs.parse_text(text)
    again = specs.parse_text(specs.format_spec(spec))
    assert again == spec
    assert any(isinstance(n, A.DataLabel) for n in specs.walk(spec))


# ------------------------------------------------------------------------------ selection
@pytest.fixture(scope="module")
def expanded():
    return _load(_data_spec(FOLDER, '"samples/{stem}_mask_a.npy"'), networks=False)


@pytest.mark.parametrize("select, limit, indices", [
    (["1"], None, [1]),
    (["0:2", "4"], None, [0, 1, 4]),
    (["3:"], None, [3, 4, 5]),
    (["dd_5,dd_2"], None, [2, 5]),
    (None, 2, [0, 1]),
    (["2:"], 2, [2, 3]),
])
def test_select_and_limit(expanded, select, limit, indices):
    spec = specs.select_elements(expanded, select, limit)
    assert [p.name for p in spec.properties] == [f"{k}[{i}]" for k in ("small", "large")
                                                 for i in indices]
    inputs = [d.name for d in spec.declarations if isinstance(d, A.InputDecl)]
    assert inputs == [f"x[{i}]" for i in indices]  # the others' inputs are dropped
    assert [p.name for p in select_properties(spec, A.VerifyProperty, "verify", ["large"])] \
        == [f"large[{i}]" for i in indices]


@pytest.mark.parametrize("select, message", [
    (["6"], "no such element (data set 'x' has 6 (0..5))"),
    (["7:9"], "no element in that range (data set 'x' has 6 (0..5))"),
    (["cat"], "no element is called so (an index, a range A:B or a file stem such as dd_0"),
])
def test_bad_selection(expanded, select, message):
    with pytest.raises(SpecError, match=message.replace("(", r"\(").replace(")", r"\)")):
        specs.select_elements(expanded, select)


def test_selection_needs_a_data_set():
    spec = _load(_by_hand(STEMS[:1]), networks=False)
    assert specs.select_elements(spec, None, None) is spec
    with pytest.raises(SpecError, match="no property of the spec ranges over a data set"):
        specs.select_elements(spec, ["0"])


# ------------------------------------------------------------------------------ bad input
def _error(text: str, source_dir: Path, **kw) -> str:
    with pytest.raises(SpecError) as info:
        _load(text, source_dir, **kw)
    return str(info.value)


@pytest.fixture()
def folder(tmp_path):
    """A data set folder of three 16x24 images with masks, and a link to the network."""
    (tmp_path / "imgs").mkdir()
    (tmp_path / "masks").mkdir()
    for i in range(3):
        np.save(tmp_path / "imgs" / f"im{i}.npy", np.load(EXAMPLES / "samples" / f"dd_{i}.npy"))
        np.save(tmp_path / "masks" / f"im{i}.npy",
                np.load(EXAMPLES / "samples" / f"dd_{i}_mask_a.npy"))
    (tmp_path / "labels.txt").write_text("7\n0\n7\n")
    return tmp_path


def _spec(source='dataset(folder("imgs"), labels="labels.txt")', mask='"masks/{stem}.npy"',
          cond="present(x.label)") -> str:
    return HEAD.format(net=f'external "{EXAMPLES}/models/mlc_plain.onnx"') + f"""
input x = {source} in [0, 1]
region a = mask({mask})
verify k on plain:
    forall x' in layered(x, rings(a, chebyshev, 1), eps=[0.01, 0.0]): {cond}
"""


def test_the_bad_input_fixture_is_valid(folder):
    assert len(_load(_spec(), folder).properties) == 3


def test_targets_from_the_data(folder):
    """``x.target`` reads the targets file, ``x.label`` the labels file, per element."""
    (folder / "targets.csv").write_text("name,label\nim0,3\nim1,5\nim2,\"9\"\n")
    source = 'dataset(folder("imgs"), labels="labels.txt", targets="targets.csv")'
    text = _spec(source=source, cond="present(x.label) and absent(x.target)") + """
attack to on plain:
    target {x.label, x.target} from x
    using pgd norm linf
"""
    spec = _load(text, folder)
    got = [(p.name, p.condition.operands[0].label, p.condition.operands[1].label)
           for p in spec.properties if isinstance(p, A.VerifyProperty)]
    assert got == [("k[0]", A.Number(7), A.Number(3)), ("k[1]", A.Number(0), A.Number(5)),
                   ("k[2]", A.Number(7), A.Number(9))]
    goals = [p.goal.labels for p in spec.properties if isinstance(p, A.AttackProperty)]
    assert goals == [(A.Number(7), A.Number(3)), (A.Number(0), A.Number(5)),
                     (A.Number(7), A.Number(9))]
    assert specs.parse_text(specs.format_spec(specs.parse_text(text))) == specs.parse_text(text)
    (folder / "targets.csv").write_text("im0,3\nim1,10\nim2,9\n")
    assert "target 10 of element 1 (im1), line 2 of targets.csv is outside network 'plain''s " \
           "10 classes" in _error(text, folder)
    no_targets = text.replace(', targets="targets.csv"', "")
    assert "data set 'x' has no targets: write dataset(..., targets=\"targets.txt\")" \
        in _error(no_targets, folder)
    twice = text.replace('targets="targets.csv"', 'labels="labels.txt"')
    assert "labels= given twice" in _error(twice, folder)


def test_an_index_pattern_with_a_format(folder):
    for i in range(3):
        (folder / "masks" / f"im{i}.npy").rename(folder / "masks" / f"m{i:03d}.npy")
    spec = _load(_spec(mask='"masks/m{i:03d}.npy"'), folder)
    masks = [n.path.text for n in specs.walk(spec) if isinstance(n, A.MaskFile)]
    assert masks == ["masks/m000.npy", "masks/m001.npy", "masks/m002.npy"]


def test_elements_that_differ_in_shape(folder):
    np.save(folder / "imgs" / "im9.npy", np.zeros((1, 1, 16, 20), dtype=np.float32))
    (folder / "labels.txt").write_text("7\n0\n7\n1\n")
    msg = _error(_spec(), folder)
    assert "t.rspec:6:19: the elements of data set 'x' differ in shape: element 3 (im9.npy) " \
           "is [1, 1, 16, 20], element 0 (im0.npy) is [1, 1, 16, 24]" in msg


def test_a_missing_per_element_mask(folder):
    (folder / "masks" / "im1.npy").unlink()
    msg = _error(_spec(), folder)
    assert "t.rspec:7:17: no per-element mask for element 1 (im1) of data set 'x': " in msg
    assert str(folder / "masks" / "im1.npy") in msg


def test_wrong_label_count(folder):
    (folder / "labels.txt").write_text("7\n0\n")
    msg = _error(_spec(), folder)
    assert "t.rspec:6:42: the labels file has 2 labels but data set 'x' has 3 elements" in msg


@pytest.mark.parametrize("labels, message", [
    ("7\n12\n7\n", "label 12 of element 1 (im1), line 2 of labels.txt is outside network "
                   "'plain''s 10 classes (0..9)"),
    ("7\ncat\n7\n", 'label "cat" of element 1 (im1), line 2 of labels.txt is not a label of '
                    "network 'plain'"),
])
def test_a_label_outside_the_networks_classes(folder, labels, message):
    (folder / "labels.txt").write_text(labels)
    msg = _error(_spec(), folder)
    assert f"t.rspec:9:79: {message}" in msg


@pytest.mark.parametrize("change, message", [
    ({"source": 'dataset(folder("imgs"))'},
     "9:79: data set 'x' has no labels: write dataset(..., labels=\"labels.txt\")"),
    ({"source": 'npy("imgs/im0.npy")'}, "9:79: 'x.label' needs a data set: input 'x' is one "
                                        "array"),
    ({"mask": '"masks/{name}.npy"'}, "7:17: a mask pattern may name only {stem} and {i}"),
    ({"source": 'dataset(folder("imgs"), labels="labels.txt.json")'},
     "6:42: a labels file must end in .npy, .csv, .txt"),
    ({"source": 'dataset(folder("nowhere"))', "cond": 'present("7")'},
     "6:26: data set folder not found"),
    ({"source": 'dataset(folder("imgs", "*.png"))', "cond": 'present("7")'},
     "6:19: data set 'x': no .npy or .png file in"),
    ({"source": 'npy("imgs/im0.npy")', "cond": 'present("7")'},
     "8:1: property 'k' uses a per-element mask but ranges over no data set"),
])
def test_bad_data_set_declarations(folder, change, message):
    (folder / "labels.txt.json").write_text("7\n0\n7\n")
    msg = _error(_spec(**change), folder)
    assert f"t.rspec:{message}" in msg


def test_a_link_out_of_the_spec_directory(folder, tmp_path_factory):
    outside = tmp_path_factory.mktemp("outside") / "secret.npy"
    np.save(outside, np.zeros((1, 1, 16, 24), dtype=np.float32))
    (folder / "imgs" / "im3.npy").symlink_to(outside)
    assert "data set 'x': im3.npy in" in _error(_spec(), folder)
    assert "is a link that leaves the spec's directory" in _error(_spec(), folder)


def test_a_stacked_array_must_have_an_element_axis(tmp_path):
    np.save(tmp_path / "flat.npy", np.zeros(5))
    text = 'network n = onnx("n.onnx")\ninput x = dataset(npy("flat.npy"))\n' \
           "verify k: forall x' in linf(x, 0.1): argmax == 0\n"
    (tmp_path / "n.onnx").write_bytes(b"")
    msg = _error(text, tmp_path, networks=False)
    assert "t.rspec:2:19: a stacked data set is an array (N, ...) of N >= 1 elements; " \
           "'flat.npy' has shape [5]" in msg


def test_a_property_over_two_data_sets(folder):
    text = _spec() + """
input y = dataset(folder("imgs"))
verify two on plain:
    forall x' in linf(y, 0.01): present(x.label)
"""
    msg = _error(text, folder)
    assert "property 'two' ranges over 2 data sets (x, y); a property may range over one" in msg


def test_element_shape_against_the_network(folder):
    for i in range(3):
        np.save(folder / "imgs" / f"im{i}.npy", np.zeros((1, 1, 16, 20), dtype=np.float32))
        np.save(folder / "masks" / f"im{i}.npy", np.zeros((16, 20), dtype=bool))
    msg = _error(_spec(), folder)
    assert "input 'x[0]' has shape [1, 1, 16, 20] but network 'plain' expects" in msg


def test_robustc_check_reports_without_a_traceback(folder):
    (folder / "labels.txt").write_text("7\n")
    spec = folder / "t.rspec"
    spec.write_text(_spec())
    out = subprocess.run([sys.executable, "-m", "robustc.cli", "check", str(spec)],
                         capture_output=True, text=True, timeout=120,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert out.returncode == 2
    assert "the labels file has 1 labels but data set 'x' has 3 elements" in out.stderr
    assert "Traceback" not in out.stderr


# ------------------------------------------------------------------------- command line
@pytest.mark.parametrize("command", ["verify", "maximize", "attack"])
def test_select_and_limit_are_spec_arguments(command):
    from robustc.cli.main import build_parser

    args = build_parser().parse_args([command, "s.rspec", "--select", "0:2,dd_5",
                                      "--select", "4", "--limit", "2"])
    assert args.select == ["0:2,dd_5", "4"] and args.limit == 2


def test_verify_runs_the_selected_elements():
    out = subprocess.run([sys.executable, "-m", "robustc.cli", "verify",
                          str(EXAMPLES / "dd_dataset_verify.rspec"), "--select", "dd_5,1:",
                          "--limit", "2", "--json", "--no-attack"],
                         capture_output=True, text=True, timeout=300,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stderr
    records = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    assert [r["name"] for r in records] == ["keep_b[1]", "keep_b[2]"]
    assert {r["verdict"] for r in records} == {"robust"}


def test_select_without_a_data_set_is_an_error(capsys):
    from robustc.cli import main

    code = main(["verify", str(EXAMPLES / "verify_constructs.rspec"), "--select", "0"])
    err = capsys.readouterr().err
    assert code == 2
    assert "no property of the spec ranges over a data set" in err
    assert "Traceback" not in err


def test_select_over_two_data_sets(folder):
    """A name picks in the data set that has it; an index in every data set that has it."""
    np.save(folder / "stack.npy", np.stack([np.load(folder / "imgs" / "im0.npy")[0]] * 2))
    text = _spec() + """
input y = dataset(npy("stack.npy"))
verify other on plain:
    forall x' in linf(y, 0.01): present("7")
"""
    spec = _load(text, folder)
    assert [p.name for p in specs.select_elements(spec, ["im2"]).properties] == ["k[2]"]
    assert [p.name for p in specs.select_elements(spec, ["1"]).properties] == ["k[1]", "other[1]"]
    assert [p.name for p in specs.select_elements(spec, ["2"]).properties] == ["k[2]"]
    with pytest.raises(SpecError, match=r"--select 3: no such element \(data set 'x' has 3 "
                                        r"\(0..2\), 'y' has 2 \(0..1\)\)"):
        specs.select_elements(spec, ["3"])
