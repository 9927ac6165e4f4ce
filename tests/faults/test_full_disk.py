"""A disk that fills up half way through a file (issue 23, item 6): one clear line, exit 2,
and no partial or temporary file left, through the command line.

Two injections, no root needed:

* Python's writers (:mod:`robustc.files`): ``open`` in that module is replaced by one whose
  files take the first half of a write and then fail with ``ENOSPC``;
* writers in C++ or in other libraries (HiGHS's ``.lp``/``.mps``, matplotlib's PNG): the
  command runs in a child process with ``RLIMIT_FSIZE`` (writes past the limit fail with
  ``EFBIG``, the kernel's own mid-file failure; ``SIGXFSZ`` ignored so the write returns the
  error instead of killing the process). HiGHS ignores such failures and used to leave a
  truncated model behind with exit 0 (see ``robustc.backends.export._check_complete``).
"""

from __future__ import annotations

import errno
import subprocess
import sys
from pathlib import Path

import pytest

import robustc.files
from robustc.cli import main
from robustc.cli.common import EXIT_ERROR, EXIT_OK
from tests.cli.test_hardening import VNNLIB, write_net

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
COMPILE_SPEC = EXAMPLES / "double_digits_verify.rspec"

LIMITED = r"""
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
limit = int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
from robustc.cli import main
sys.exit(main(sys.argv[2:]))
"""


class HalfFull:
    """A binary file that stores the first half of the first write, then fails."""

    def __init__(self, path, mode="wb", *args, **kwargs):
        self.fh = open(path, mode, *args, **kwargs)  # noqa: SIM115 (closed in __exit__)

    def write(self, data):
        self.fh.write(data[: len(data) // 2])
        self.fh.flush()
        raise OSError(errno.ENOSPC, "No space left on device")

    def __getattr__(self, name):
        return getattr(self.fh, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.fh.close()


@pytest.fixture
def full_disk(monkeypatch):
    monkeypatch.setattr(robustc.files, "open", HalfFull, raising=False)


def _query(folder: Path) -> Path:
    query = folder / "q.vnnlib"
    query.write_text(VNNLIB + "".join(f"(assert (>= X_{i} 0)) (assert (<= X_{i} 1))\n"
                                      for i in range(4)) + "(assert (>= Y_1 Y_0))\n")
    return query


def test_vnncomp_result_on_a_full_disk(tmp_path, capsys, full_disk):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    target = out_dir / "result.txt"
    code = main(["verify", str(_query(tmp_path)), "--network", str(write_net(tmp_path)),
                 "--vnncomp-result", str(target)])
    err = capsys.readouterr().err
    assert code == EXIT_ERROR, err
    assert f"robustc: error: cannot write {target}: No space left on device" in err
    assert "Traceback" not in err
    assert list(out_dir.iterdir()) == []  # neither the result nor a temporary file


def test_fmt_in_place_on_a_full_disk_keeps_the_old_spec(tmp_path, capsys, full_disk):
    spec = tmp_path / "s.rspec"
    old = 'network   n = onnx("n.onnx")\n'
    spec.write_text(old, encoding="utf-8")
    code = main(["fmt", "-i", str(spec)])
    err = capsys.readouterr().err
    assert code == EXIT_ERROR, err
    assert f"cannot write {spec}: No space left on device" in err
    assert spec.read_text(encoding="utf-8") == old
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.rspec"]


def test_without_the_fault_the_same_commands_succeed(tmp_path, capsys):
    """The oracle: the commands above succeed when the disk is not full."""
    target = tmp_path / "result.txt"
    code = main(["verify", str(_query(tmp_path)), "--network", str(write_net(tmp_path)),
                 "--vnncomp-result", str(target)])
    assert code in (EXIT_OK, 1)
    assert target.read_text().splitlines()[0] in ("sat", "unsat", "unknown")


def _limited(args: list, limit: int, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", LIMITED, str(limit), *map(str, args)],
                          capture_output=True, text=True, cwd=cwd, timeout=120,
                          env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})


@pytest.mark.parametrize("fmt, suffix", [("lp", ".lp"), ("mps", ".mps")])
def test_a_highs_model_cut_by_the_file_size_limit_is_not_left_behind(tmp_path, fmt, suffix):
    models = tmp_path / "models"
    done = _limited(["compile", COMPILE_SPEC, "-o", models, "--format", fmt], 1 << 30, tmp_path)
    assert done.returncode == EXIT_OK, done.stderr  # the oracle: unlimited, every model
    sizes = sorted(p.stat().st_size for p in models.iterdir())
    assert sizes and all(p.suffix == suffix for p in models.iterdir())
    cut = tmp_path / "cut"
    limit = sizes[0] // 2  # every model is larger: the first write is cut half way
    got = _limited(["compile", COMPILE_SPEC, "-o", cut, "--format", fmt], limit, tmp_path)
    assert got.returncode == EXIT_ERROR, (got.returncode, got.stderr)
    lines = [line for line in got.stderr.splitlines() if line.startswith("robustc:")]
    assert len(lines) == 1 and "cannot write" in lines[0] and suffix in lines[0], got.stderr
    assert "incomplete" in lines[0]
    assert "Traceback" not in got.stderr
    assert list(cut.iterdir()) == []


def test_a_plot_cut_by_the_file_size_limit_is_not_left_behind(tmp_path):
    pytest.importorskip("matplotlib")
    net, query = write_net(tmp_path), _query(tmp_path)
    plot = tmp_path / "plots" / "p.png"
    plot.parent.mkdir()
    got = _limited(["verify", query, "--network", net, "--plot", plot], 1000, tmp_path)
    assert got.returncode == EXIT_ERROR, (got.returncode, got.stderr)
    assert f"cannot write {plot}: File too large" in got.stderr, got.stderr
    assert "Traceback" not in got.stderr
    assert list(plot.parent.iterdir()) == []


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="no /dev/full on this system")
def test_a_standard_output_on_a_full_disk_is_one_clear_line(tmp_path):
    """``robustc verify ... > /dev/full``: one line naming the failed write, exit 2 (it was a
    traceback of the OSError and exit 1, the 'not robust' code)."""
    vnnlib = tmp_path / "prop.vnnlib"
    vnnlib.write_text(VNNLIB + "".join(f"(assert (>= X_{i} 0)) (assert (<= X_{i} 0.1))\n"
                                       for i in range(4)) + "(assert (>= Y_1 Y_0))\n")
    with open("/dev/full", "w") as full:
        proc = subprocess.run([sys.executable, "-m", "robustc", "verify", str(vnnlib),
                               "--network", str(write_net(tmp_path))], stdout=full,
                              stderr=subprocess.PIPE, text=True, timeout=120)
    assert proc.returncode == EXIT_ERROR, proc.stderr
    assert "robustc: error: cannot write the output: [Errno 28]" in proc.stderr
    assert "Traceback" not in proc.stderr


EXIT_NOW = r"""
import atexit, sys, threading, time
from robustc.cli.main import exit_now
atexit.register(lambda: print("exit handler ran", flush=True))
if sys.argv[1] == "thread":  # a non-daemon thread still running: a normal exit waits for it
    threading.Thread(target=lambda: (time.sleep(0.5), print("thread ended"))).start()
print("result", end="")  # buffered: exit_now flushes it
exit_now(3)
print("never")
"""


@pytest.mark.parametrize("case", ["plain", "thread"])
def test_exit_now_flushes_runs_the_exit_handlers_and_keeps_the_code(case):
    proc = subprocess.run([sys.executable, "-c", EXIT_NOW, case], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 3, proc.stderr
    lines = proc.stdout.splitlines()
    if case == "plain":
        assert lines == ["resultexit handler ran"]
    else:
        assert lines[0].startswith("result") and "thread ended" in proc.stdout
        assert "exit handler ran" in proc.stdout and "never" not in proc.stdout
