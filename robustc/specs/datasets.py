"""Data sets in specs: expand a property over a data set into one instance per element.

An input declared ``dataset(npy("stack.npy"))`` (a stacked array, one element per entry
of the first axis) or ``dataset(folder("dir" [, "glob"] [, grey|rgb]))`` (the ``.npy``
and ``.png`` files of a folder, in natural order: ``img2`` before ``img10``), with an
optional ``labels="file"`` and ``targets="file"`` (``.npy``, ``.txt`` or ``.csv``, one
label per element: ``x.label``, ``x.target``), is a data set. :func:`expand` turns a
resolved, checked spec into one without data sets:

* each element becomes an input ``x[i]`` (:class:`~robustc.specs.ast.DataElement`);
* each property over a data set becomes the properties ``prop[0]``, ``prop[1]``, ... on
  those inputs; ``x.label`` becomes the element's label (an index or a label name);
* a region with a per-element mask ``mask("masks/{stem}.npy")`` (``{stem}``: the element's
  file stem, or its index for a stacked array; ``{i}``: its index) and a region with
  ``pixels(x ...)`` over the data set get one copy per element.

:func:`select_elements` keeps the instances of some elements (``--select``, ``--limit``).
Every problem is a positioned :class:`~robustc.errors.SpecError`; numpy and PIL are
imported only here, when a spec has a data set.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from robustc.errors import SpecError
from robustc.specs import ast as A
from robustc.specs.checker import resolve_path
from robustc.specs.diagnostics import Diagnostic, make, raise_if_any

__all__ = ["DataElements", "expand", "select_elements", "data_elements", "element_shape",
           "natural_key"]

_PROPERTY_INPUT_NODES = (A.LinfBall, A.LayeredNeighbourhood, A.PixelPredicate, A.AttackProperty,
                         A.DataLabel)


@dataclass(frozen=True)
class DataElements:
    """What a data set holds: per element its file (``""`` for a stacked array) and stem,
    the elements' common shape, and the labels and targets (None without their file) with
    the line of the file each came from (the index for ``.npy``)."""

    files: tuple[str, ...]
    stems: tuple[str, ...]
    shape: tuple[int, ...]
    labels: tuple[int | str, ...] | None = None
    label_lines: tuple[int, ...] = ()
    targets: tuple[int | str, ...] | None = None
    target_lines: tuple[int, ...] = ()

    def where(self, index: int) -> str:
        """Element ``index`` in words: ``element 3 (dd_3)``."""
        return f"element {index} ({self.stems[index]})"


def natural_key(name: str) -> list:
    """Sort key that orders digit runs by value: ``img2`` before ``img10``."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def element_shape(path: Path, mode: str) -> tuple[int, ...]:
    """The shape of one element file as loaded (``.npy`` as stored; ``.png``: (H, W) grey or
    (3, H, W) rgb), read from the header only. Raises OSError or ValueError."""
    if path.suffix.lower() == ".npy":
        import numpy as np

        return tuple(np.load(path, mmap_mode="r", allow_pickle=False).shape)
    from PIL import Image

    with Image.open(path) as image:
        w, h = image.size
    return (h, w) if mode == "grey" else (3, h, w)


def _fail(node: A.Node, message: str, spec: A.Spec):
    raise_if_any([make(node.pos, message, spec.source)])


def data_elements(spec: A.Spec, decl: A.InputDecl) -> DataElements:
    """List the elements of a data-set input (files and shapes, not the values) and read its
    labels. Raises a positioned :class:`SpecError` for an empty or unreadable data set,
    elements that differ in shape, or a labels file that does not fit."""
    data: A.DataSet = decl.source
    files = data.files
    if isinstance(files, A.NpyFile):
        found = _stacked(spec, decl.name, files)
    else:
        found = _folder(spec, decl.name, files)
    for kind, path in (("label", data.labels), ("target", data.targets)):
        if path is None:
            continue
        values, lines = _read_labels(spec, path)
        if len(values) != len(found.files):
            _fail(path, f"the {kind}s file has {len(values)} {kind}s but data set "
                        f"'{decl.name}' has {len(found.files)} elements", spec)
        found = dataclasses.replace(found, **{kind + "s": values, kind + "_lines": lines})
    return found


def _stacked(spec: A.Spec, name: str, files: A.NpyFile) -> DataElements:
    import numpy as np

    try:
        shape = np.load(resolve_path(spec, files.path), mmap_mode="r", allow_pickle=False).shape
    except (OSError, ValueError) as exc:
        _fail(files, f"cannot read data set '{name}': {exc}", spec)
    if len(shape) < 2 or shape[0] == 0:
        _fail(files, f"a stacked data set is an array (N, ...) of N >= 1 elements; "
                     f"'{files.path.text}' has shape {list(shape)}", spec)
    stems = tuple(str(i) for i in range(shape[0]))
    return DataElements(("",) * shape[0], stems, tuple(shape[1:]))


def _folder(spec: A.Spec, name: str, files: A.DataFolder) -> DataElements:
    folder = resolve_path(spec, files.path)
    pattern = files.pattern or "*"
    try:
        names = sorted((p.name for p in folder.iterdir() if p.is_file() and p.suffix.lower()
                        in (".npy", ".png") and fnmatch.fnmatch(p.name, pattern)),
                       key=natural_key)
    except OSError as exc:
        _fail(files, f"cannot list data set '{name}': {exc}", spec)
    if not names:
        _fail(files, f"data set '{name}': no .npy or .png file in {folder}"
                     + (f" matches \"{files.pattern}\"" if files.pattern else ""), spec)
    base = Path(spec.source_dir).resolve()
    if not files.path.external:
        out = [n for n in names if not _inside((folder / n).resolve(), base)]
        if out:
            _fail(files, f"data set '{name}': {out[0]} in {folder} is a link that leaves the "
                         f"spec's directory ({base}); write external \"...\" to allow it", spec)
    shapes = []
    for fname in names:
        try:
            shapes.append(element_shape(folder / fname, files.mode))
        except (OSError, ValueError) as exc:
            _fail(files, f"data set '{name}': cannot read element {len(shapes)} ({fname}): "
                         f"{exc}", spec)
        if shapes[-1] != shapes[0]:
            _fail(files, f"the elements of data set '{name}' differ in shape: element "
                         f"{len(shapes) - 1} ({fname}) is {list(shapes[-1])}, element 0 "
                         f"({names[0]}) is {list(shapes[0])}", spec)
    rel = files.path.text.rstrip("/")
    return DataElements(tuple(f"{rel}/{n}" for n in names), tuple(Path(n).stem for n in names),
                        shapes[0])


def _read_labels(spec: A.Spec, path: A.PathRef) -> tuple[tuple, tuple[int, ...]]:
    """The labels of a labels file: ints are label indices, other words label names."""
    target = resolve_path(spec, path)
    suffix = target.suffix.lower()
    try:
        if suffix == ".npy":
            return _npy_labels(spec, path, target)
        text = target.read_text(encoding="utf-8-sig")
    except (OSError, ValueError) as exc:
        _fail(path, f"cannot read labels: {exc}", spec)
    rows = [(n, line.strip()) for n, line in enumerate(text.splitlines(), start=1)
            if line.strip()]
    if suffix == ".csv":
        import csv

        rows = [(n, next(csv.reader([line]))[-1].strip()) for n, line in rows]
        if rows and rows[0][1].lower() == "label":  # a header row
            rows = rows[1:]
    labels = tuple(int(word) if re.fullmatch(r"[+-]?\d+", word) else word for _, word in rows)
    return labels, tuple(n for n, _ in rows)


def _npy_labels(spec: A.Spec, path: A.PathRef, target: Path) -> tuple[tuple, tuple[int, ...]]:
    import numpy as np

    values = np.load(target, allow_pickle=False)
    if values.ndim != 1:
        _fail(path, f"a labels array must be one-dimensional (one label per element), got "
                    f"shape {list(values.shape)}", spec)
    if values.dtype.kind in "iu":
        labels = tuple(int(v) for v in values)
    elif values.dtype.kind == "f" and np.all(np.isfinite(values)) \
            and np.all(values == np.round(values)):
        labels = tuple(int(v) for v in values)
    elif values.dtype.kind == "U":
        labels = tuple(str(v) for v in values)
    else:
        _fail(path, f"labels must be integers (label indices) or strings (label names), "
                    f"got {values.dtype} values", spec)
    return labels, tuple(range(len(labels)))


# ------------------------------------------------------------------------------ expansion
def expand(spec: A.Spec) -> A.Spec:
    """Return ``spec`` with every property over a data set expanded to one instance per
    element (see the module docstring); a spec without data sets is returned as it is.

    Raises a positioned :class:`SpecError` listing the problems: a data set that cannot be
    read, elements that differ in shape, a labels file whose count is not the number of
    elements, a label outside the network's labels, a missing per-element mask, a property
    over two data sets, a per-element mask in a property over no data set.
    """
    inputs = spec.declared(A.InputDecl)
    datasets = {n: d for n, d in inputs.items() if isinstance(d.source, A.DataSet)}
    if not datasets and not any(isinstance(n, A.MaskFile) and _is_pattern(n.path)
                                for n in _walk(spec.declarations + spec.properties)):
        return spec
    elements = {n: data_elements(spec, d) for n, d in datasets.items()}
    exp = _Expansion(spec, datasets, elements)
    props = []
    for prop in spec.properties:
        props.extend(exp.property(prop))
    raise_if_any(exp.diags)
    decls = [d for d in spec.declarations
             if not (isinstance(d, A.InputDecl) and d.name in datasets)
             and not (isinstance(d, A.RegionDecl) and d.name in exp.dependent)]
    return dataclasses.replace(spec, declarations=tuple(decls) + tuple(exp.new_decls),
                               properties=tuple(props), instances=tuple(exp.instances))


class _Expansion:
    def __init__(self, spec: A.Spec, datasets: dict, elements: dict[str, DataElements]):
        self.spec, self.datasets, self.elements = spec, datasets, elements
        self.regions = spec.declared(A.RegionDecl)
        self.dependent = {n for n in self.regions if self.region_data(self.regions[n]) is not None}
        self.diags: list[Diagnostic] = []
        self.new_decls: list = []
        self.made: dict[tuple[str, int], tuple[str, ...]] = {}  # region copies per element
        self.instances: list[A.Instance] = []
        self.decodes = {d.network: d for d in spec.declarations if isinstance(d, A.DecodeDecl)}
        self.label_lists = spec.declared(A.LabelsDecl)
        self.networks = spec.declared(A.NetworkDecl)

    def error(self, node: A.Node, message: str) -> None:
        diag = make(node.pos, message, self.spec.source)
        if diag not in self.diags:
            self.diags.append(diag)

    # -- what a property ranges over
    def region_data(self, node, depth: int = 0) -> set | None:
        """The data sets a region (or any node) reads: pixels over one, per-element masks
        (``"*"``: any data set), regions that do; None when it reads none."""
        found: set = set()
        for item in _walk(node):
            if isinstance(item, A.MaskFile) and _is_pattern(item.path):
                found.add("*")
            elif isinstance(item, A.RegionRef) and item.name in self.regions and depth < 100:
                found |= self.region_data(self.regions[item.name], depth + 1) or set()
            if isinstance(item, _PROPERTY_INPUT_NODES) and item.input in self.datasets:
                found.add(item.input)
            if isinstance(item, A.PatchProperty):
                found |= {n for n in item.inputs if n in self.datasets}
        return found or None

    def property(self, prop) -> list:
        data = self.region_data(prop) or set()
        named = sorted(data - {"*"})
        if not data:
            return [prop]
        if not named:
            self.error(prop, f"property '{prop.name}' uses a per-element mask but ranges over "
                             f"no data set")
            return []
        if len(named) > 1:
            self.error(prop, f"property '{prop.name}' ranges over {len(named)} data sets "
                             f"({', '.join(named)}); a property may range over one")
            return []
        name = named[0]
        out = []
        for index in range(len(self.elements[name].files)):
            decls = self.element_decls(name, index, prop)
            inst = _Instance(self, name, index)
            new = inst.rewrite(prop)
            new = dataclasses.replace(new, name=f"{prop.name}[{index}]")
            self.check_labels(prop, new, name, index)
            out.append(new)
            self.instances.append(A.Instance(new.name, prop.name, name, index,
                                             self.elements[name].stems[index], decls))
        return out

    # -- per-element declarations
    def element_decls(self, name: str, index: int, prop) -> tuple[str, ...]:
        """Declare element ``index``'s input and its copies of the element-dependent
        regions ``prop`` uses (once each); return their names."""
        decl, found = self.datasets[name], self.elements[name]
        names = [self.input_name(name, index)]
        if (name, index) not in self.made:
            element = A.DataElement(decl.source, index, found.files[index], found.stems[index],
                                    pos=decl.source.pos)
            self.new_decls.append(dataclasses.replace(decl, name=names[0], source=element))
            self.made[(name, index)] = ()
        inst = _Instance(self, name, index)
        used = self.used_regions(prop)
        for rname in self.regions:  # in source order: a copy refers only to earlier ones
            if rname in self.dependent and rname in used:
                copy_name = inst.region_name(rname)
                if copy_name not in self.made[(name, index)]:
                    region = self.regions[rname]
                    self.new_decls.append(dataclasses.replace(
                        region, name=copy_name, region=inst.rewrite(region.region)))
                    self.made[(name, index)] += (copy_name,)
                names.append(copy_name)
        return tuple(names)

    def used_regions(self, node) -> set[str]:
        """The regions ``node`` refers to, directly or through other regions."""
        found: set[str] = set()
        stack = [n.name for n in _walk(node) if isinstance(n, A.RegionRef)]
        while stack:
            rname = stack.pop()
            if rname in found or rname not in self.regions:
                continue
            found.add(rname)
            stack.extend(n.name for n in _walk(self.regions[rname]) if isinstance(n, A.RegionRef))
        return found

    def input_name(self, name: str, index: int) -> str:
        return f"{name}[{index}]"

    def region_name(self, region: str, name: str, index: int) -> str:
        return f"{region}[{index}]" if len(self.datasets) == 1 else f"{region}[{name}:{index}]"

    # -- labels from the data
    def check_labels(self, prop, new, name: str, index: int) -> None:
        """A label or target taken from the data must be one of the network's labels."""
        uses = {n.kind: n for n in reversed(list(_walk(prop))) if isinstance(n, A.DataLabel)}
        for use in uses.values():
            self.check_label(prop, use, name, index)

    def check_label(self, prop, use: A.DataLabel, name: str, index: int) -> None:
        found = self.elements[name]
        values = getattr(found, use.kind + "s")
        if values is None:
            return  # the checker reported it
        value = values[index]
        net = getattr(prop, "network", None)
        if net is None and len(self.networks) == 1:
            net = next(iter(self.networks))
        decode = self.decodes.get(net or "")
        names = self.label_lists.get(decode.labels) if decode is not None else None
        if names is None:
            return  # indices are checked against the network's outputs (check_networks)
        names = names.names
        source = getattr(self.datasets[name].source, use.kind + "s")
        where = (f"{found.where(index)}, line {getattr(found, use.kind + '_lines')[index]} of "
                 f"{source.text}")
        if isinstance(value, str) and value not in names:
            self.error(use, f"{use.kind} \"{value}\" of {where} is not a label of network "
                            f"'{net}' (labels: {', '.join(names)})")
        elif isinstance(value, int) and not 0 <= value < len(names):
            self.error(use, f"{use.kind} {value} of {where} is outside network '{net}''s "
                            f"{len(names)} classes (0..{len(names) - 1})")


class _Instance:
    """Rewrites nodes for element ``index`` of data set ``name``."""

    def __init__(self, exp: _Expansion, name: str, index: int):
        self.exp, self.name, self.index = exp, name, index

    def region_name(self, region: str) -> str:
        return self.exp.region_name(region, self.name, self.index)

    def rewrite(self, node):
        if isinstance(node, tuple):
            return tuple(self.rewrite(item) for item in node)
        if not isinstance(node, A.Node):
            return node
        if isinstance(node, A.DataLabel):
            return self.label(node)
        changes = {f.name: self.rewrite(getattr(node, f.name))
                   for f in dataclasses.fields(node) if f.compare}
        if isinstance(node, _PROPERTY_INPUT_NODES) and node.input == self.name:
            changes["input"] = self.exp.input_name(self.name, self.index)
        if isinstance(node, A.PatchProperty):
            changes["inputs"] = tuple(self.exp.input_name(n, self.index) if n == self.name
                                      else n for n in node.inputs)
        if isinstance(node, A.RegionRef) and node.name in self.exp.dependent:
            changes["name"] = self.region_name(node.name)
        if isinstance(node, A.MaskFile) and _is_pattern(node.path):
            changes["path"] = self.mask_path(node.path)
        return dataclasses.replace(node, **changes)

    def label(self, node: A.DataLabel) -> A.Expr:
        values = getattr(self.exp.elements[node.input], node.kind + "s")
        if values is None:  # the checker reports it; keep a value for later checks
            return A.Number(0, pos=node.pos)
        value = values[self.index]
        return A.Number(value, pos=node.pos) if isinstance(value, int) else A.Str(value,
                                                                                 pos=node.pos)

    def mask_path(self, path: A.PathRef) -> A.PathRef:
        found = self.exp.elements[self.name]
        text = path.text.format(stem=found.stems[self.index], i=self.index)
        new = dataclasses.replace(path, text=text)
        spec = self.exp.spec
        target = resolve_path(spec, new)
        base = Path(spec.source_dir).resolve()
        if not path.external and not _inside(target, base):
            self.exp.error(path, f"the mask of {found.where(self.index)}, '{text}', leaves the "
                                 f"spec's directory ({base}); write external \"...\" to allow it")
        elif not target.is_file():
            self.exp.error(path, f"no per-element mask for {found.where(self.index)} of data "
                                 f"set '{self.name}': {target} not found")
        return new


def _inside(target: Path, base: Path) -> bool:
    return target == base or base in target.parents


def _is_pattern(path: A.PathRef) -> bool:
    """A per-element mask name (the checker allows only ``{stem}`` and ``{i}`` in braces,
    with an optional format such as ``{i:03d}``)."""
    return "{" in path.text or "}" in path.text


def _walk(node):
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, tuple):
            stack.extend(item)
        elif isinstance(item, A.Node):
            yield item
            stack.extend(getattr(item, f.name) for f in dataclasses.fields(item) if f.compare)


# ------------------------------------------------------------------------------ selection
def select_elements(spec: A.Spec, select: Iterable[str] | None = None,
                    limit: int | None = None) -> A.Spec:
    """Keep only the instances of the chosen elements of an expanded spec.

    ``select`` items are comma-separated element indices (``3``), half-open ranges
    (``0:10``, ``5:``) or element names (file stems, ``dd_3``); ``limit`` keeps the first
    ``limit`` of the chosen elements (in data-set order). Properties over no data set are
    kept. Returns the spec unchanged when neither is given; raises :class:`SpecError` when
    the spec has no data set, or for an index out of range, an unknown name or an empty
    choice.
    """
    words = [w.strip() for item in (select or []) for w in str(item).split(",") if w.strip()]
    if not words and limit is None:
        return spec
    if not spec.instances:
        raise SpecError("--select and --limit choose elements of a data set, but no property "
                        "of the spec ranges over a data set (input x = dataset(...))")
    elements: dict[str, dict[int, str]] = {}
    for inst in spec.instances:
        elements.setdefault(inst.data, {})[inst.index] = inst.stem
    chosen, applied = {}, set()
    for data, stems in elements.items():
        chosen[data], used = _choose(words, stems)
        applied |= used
    for word in words:  # a word must pick an element of at least one data set
        if word not in applied:
            raise SpecError(_unknown(word, elements))
    if limit is not None:
        chosen = {data: set(sorted(picked)[:limit]) for data, picked in chosen.items()}
    keep = [i for i in spec.instances if i.index in chosen[i.data]]
    if not keep:
        raise SpecError(f"--select {','.join(words)} chooses no element")
    dropped = {i.name for i in spec.instances} - {i.name for i in keep}
    used = {n for i in keep for n in i.decls}
    unused = {n for i in spec.instances for n in i.decls} - used
    decls = tuple(d for d in spec.declarations if getattr(d, "name", None) not in unused)
    props = tuple(p for p in spec.properties if p.name not in dropped)
    return dataclasses.replace(spec, declarations=decls, properties=props, instances=tuple(keep))


def _choose(words: list[str], stems: dict[int, str]) -> tuple[set[int], set[str]]:
    """The indices ``words`` pick among ``stems`` (all without words), and the words that
    picked at least one."""
    if not words:
        return set(stems), set()
    count = max(stems) + 1
    by_stem = {s: i for i, s in stems.items()}
    picked: set[int] = set()
    used: set[str] = set()
    for word in words:
        if re.fullmatch(r"\d*:\d*", word):
            a, b = word.split(":")
            found = set(range(int(a or 0), min(int(b) if b else count, count)))
        elif word.isdigit():
            found = {int(word)} & set(stems)
        else:
            found = {by_stem[word]} if word in by_stem else set()
        picked |= found
        used |= {word} if found else set()
    return picked, used


def _unknown(word: str, elements: dict[str, dict[int, str]]) -> str:
    """Why a ``--select`` word picks nothing, in words."""
    sizes = ", ".join(f"'{d}' has {max(s) + 1} (0..{max(s)})" for d, s in elements.items())
    if re.fullmatch(r"\d*:\d*", word):
        return f"--select {word}: no element in that range (data set {sizes})"
    if word.isdigit():
        return f"--select {word}: no such element (data set {sizes})"
    stems = [s for stems in elements.values() for s in stems.values()]
    some = ", ".join(stems[:5]) + (", ..." if len(stems) > 5 else "")
    return (f"--select {word}: no element is called so (an index, a range A:B or a file stem "
            f"such as {some})")
