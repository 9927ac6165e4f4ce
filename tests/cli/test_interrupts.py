"""Issue 23 (hardening), item 5 and spec text: SIGINT exits 130 and SIGTERM 143 with a
short message after the results that finished; a UTF-8 byte order mark is accepted and a
binary (non-UTF-8) spec or VNN-LIB file is an error with its position."""

from __future__ import annotations

import codecs
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from robustc.cli import main
from robustc.cli.common import EXIT_ERROR, EXIT_INTERRUPTED, EXIT_OK, EXIT_TERMINATED
from tests.cli.test_hardening import VNNLIB, write_net, write_spec

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT / "examples" / "double_digits_verify.rspec"


@pytest.mark.parametrize("sig, code, words", [
    (signal.SIGINT, EXIT_INTERRUPTED, "interrupted (SIGINT)"),
    (signal.SIGTERM, EXIT_TERMINATED, "terminated (SIGTERM)"),
])
def test_a_signal_stops_verify_after_the_finished_results(sig, code, words):
    """keep_seven is proved by the bounds; keep_seven_wider needs a MILP and is still
    running when the signal arrives: its verdict must not appear, keep_seven's must."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "robustc.cli", "verify", str(SPEC), "-p", "keep_seven",
         "-p", "keep_seven_wider"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)
    try:
        first = proc.stdout.readline()
        proc.send_signal(sig)
        rest, err = proc.communicate(timeout=300)  # a hang guard, not a timing assertion
    finally:
        proc.kill()
    assert first.startswith("keep_seven: ROBUST")
    assert proc.returncode == code
    assert "keep_seven_wider:" not in rest
    assert f"robustc: {words}: the results printed above are complete" in err
    assert "Traceback" not in err


def test_a_byte_order_mark_is_accepted(tmp_path, capsys):
    spec = write_spec(tmp_path)
    spec.write_bytes(codecs.BOM_UTF8 + spec.read_bytes())
    assert main(["check", str(spec)]) == EXIT_OK
    assert "p.rspec: ok" in capsys.readouterr().out


def test_a_byte_order_mark_keeps_positions(tmp_path, capsys):
    spec = write_spec(tmp_path)
    spec.write_bytes(codecs.BOM_UTF8 + spec.read_bytes().replace(b"argmax == 0",
                                                                 b"argmax == 9"))
    assert main(["check", str(spec)]) == EXIT_ERROR
    assert "p.rspec:6:19: " in capsys.readouterr().err


@pytest.mark.parametrize("data, where, byte", [
    (b'network n = onnx("net.onnx")\n# caf\xe9\n', "2:6", "0xe9 at offset 34"),
    (b"\x08\x07\x12\x07pytorch\x1a\x052.1\x00\xff\xfe", "1:18", "0xff at offset 17"),
])
def test_a_binary_spec_is_an_error_with_a_position(tmp_path, capsys, data, where, byte):
    spec = tmp_path / "bad.rspec"
    spec.write_bytes(data)
    assert main(["check", str(spec)]) == EXIT_ERROR
    err = capsys.readouterr().err
    assert f"bad.rspec:{where}: not UTF-8 text (byte {byte}): is this a binary file?" in err


def test_vnnlib_with_a_bom_loads_and_a_binary_one_is_positioned(tmp_path, capsys):
    body = "".join(f"(assert (>= X_{i} 0)) (assert (<= X_{i} 1))\n" for i in range(4))
    query = tmp_path / "q.vnnlib"
    query.write_bytes(codecs.BOM_UTF8 + (VNNLIB + body + "(assert (>= Y_1 1e9))\n").encode())
    net = str(write_net(tmp_path))
    assert main(["verify", str(query), "--network", net, "--no-attack"]) == EXIT_OK
    capsys.readouterr()
    query.write_bytes(VNNLIB.encode() + b"(assert (>= X_0 \xc3\x28))\n")
    assert main(["verify", str(query), "--network", net]) == EXIT_ERROR
    assert "q.vnnlib:8:17: not UTF-8 text (byte 0xc3 at offset" in capsys.readouterr().err


def test_an_interrupted_pool_ends_its_workers_instead_of_waiting():
    """``robustc global --workers N`` closes its pool with ``wait=False`` on an interrupt:
    a worker busy with a long chunk is ended by SIGTERM, not left to finish it."""
    import time

    from robustc.analyses.global_robustness import ProcessExecutor

    executor = ProcessExecutor(1)
    busy = executor._pool.submit(time.sleep, 60)  # a stand-in for a long chunk
    while not busy.running():
        time.sleep(0.05)
    workers = list(executor._pool._processes.values())
    executor.close(wait=False)
    for proc in workers:
        proc.join(timeout=30)  # a hang guard, not a timing assertion
        # the pool's own thread may be reaping the same process: join can return when it
        # has exited but before its exit code is read (seen once under load)
        until = time.monotonic() + 30
        while proc.exitcode is None and time.monotonic() < until:
            time.sleep(0.05)
        assert proc.exitcode == -signal.SIGTERM
