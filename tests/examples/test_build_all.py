"""``build_all.py``'s report of which rebuilt files are byte for byte the ones they replaced."""

from __future__ import annotations

import os
import sys

from .helpers import TRAIN


def _build_all(monkeypatch, root):
    if str(TRAIN) not in sys.path:
        sys.path.insert(0, str(TRAIN))
    import build_all

    monkeypatch.setattr(build_all, "EXAMPLES", root)
    return build_all


def test_rebuilt_files_are_compared_by_content_and_only_where_written(tmp_path, monkeypatch):
    """Of the files a step writes, the same bytes count as reproduced and other bytes or a
    new file as different; files not written and manifests are left out."""
    build_all = _build_all(monkeypatch, tmp_path)
    for folder in build_all.OUTPUTS:
        (tmp_path / folder).mkdir()
    models = tmp_path / "models"
    for name, data in [("a.onnx", b"a"), ("b.onnx", b"b"), ("c.onnx", b"c"), ("a.json", b"{}")]:
        (models / name).write_bytes(data)
    before = build_all.digests()
    assert "models/a.json" not in before and len(before) == 3

    def rewrite(name: str, data: bytes) -> None:
        path = models / name
        path.write_bytes(data)
        stat = path.stat()  # a later modification time, as a rebuild gives it
        os.utime(path, ns=(stat.st_atime_ns, before.get(f"models/{name}", (0, 0))[1] + 10**9))

    rewrite("a.onnx", b"a")       # rebuilt, same bytes
    rewrite("b.onnx", b"B")       # rebuilt, other bytes
    rewrite("d.onnx", b"d")       # new
    (models / "a.json").write_bytes(b'{"train_seconds": 1}')
    same, changed = build_all.compare(before, build_all.digests())
    assert same == ["models/a.onnx"]
    assert changed == ["models/b.onnx", "models/d.onnx"]
