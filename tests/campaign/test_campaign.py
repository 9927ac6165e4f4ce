"""Issue 22, items 2-5: instance lists, workers, the results log (SIGKILL and resume, SIGINT),
the summary and the pictures, and the bad input of campaigns.

The instances are built so that their answers are known without robustc: each VNN-LIB file
fixes the input to a box of half-width 1e-4 around a point and asks whether ``Y_0 >= c``;
onnxruntime's output at the centre decides it, with ``c`` 0.5 below (``sat``) or above
(``unsat``) that output, far beyond what the box can change.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import onnx
import pytest

from robustc.analyses import campaign as C
from robustc.cli import main
from robustc.cli.common import EXIT_ERROR, EXIT_INTERRUPTED, EXIT_VIOLATED
from tests.verify.nets import mlp_onnx

ROOT = Path(__file__).resolve().parents[2]
HALF_WIDTH = 1e-4


def make_instances(folder: Path, n: int) -> dict[str, str]:
    """A 4 -> 8 -> 3 network, ``n`` VNN-LIB files and ``instances.csv``; returns the expected
    answer of each instance name, from onnxruntime at the box centres."""
    import onnxruntime as ort

    model = mlp_onnx(np.random.default_rng(1), [4, 8, 3])
    onnx.save(model, str(folder / "net.onnx"))
    session = ort.InferenceSession(str(folder / "net.onnx"), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(2)
    expected, rows = {}, []
    for i in range(n):
        x = rng.uniform(0.2, 0.8, size=(1, 4)).astype(np.float32)
        y0 = float(session.run(None, {session.get_inputs()[0].name: x})[0].ravel()[0])
        sat = i % 3 == 0
        c = y0 - 0.5 if sat else y0 + 0.5
        text = "".join(f"(declare-const X_{k} Real)\n" for k in range(4))
        text += "".join(f"(declare-const Y_{k} Real)\n" for k in range(3))
        for k in range(4):
            text += f"(assert (>= X_{k} {float(x[0, k]) - HALF_WIDTH!r}))\n"
            text += f"(assert (<= X_{k} {float(x[0, k]) + HALF_WIDTH!r}))\n"
        text += f"(assert (>= Y_0 {c!r}))\n"
        (folder / f"q{i}.vnnlib").write_text(text)
        rows.append(f"net.onnx,q{i}.vnnlib,30\n")
        expected[f"net/q{i}"] = "sat" if sat else "unsat"
    (folder / "instances.csv").write_text("".join(rows))
    return expected


def read_records(path: Path) -> list[dict]:
    lines = path.read_text().splitlines()
    assert "fingerprint" in json.loads(lines[0])
    return [json.loads(line) for line in lines[1:]]


def cli(*argv) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, "-m", "robustc.cli", *map(str, argv)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def wait_for_records(proc: subprocess.Popen, path: Path, count: int) -> None:
    """Poll the results file until it holds ``count`` records (a hang guard of 120 s)."""
    for _ in range(24000):
        if path.is_file() and path.read_text().count("\n") >= count + 1:
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.005)
    raise AssertionError("no records appeared")


# -- instance lists ----------------------------------------------------------------------

def test_an_instance_list_gives_the_known_answers_and_result_files(tmp_path, capsys):
    expected = make_instances(tmp_path, 6)
    out = tmp_path / "answers"
    code = main(["verify", str(tmp_path / "instances.csv"), "--vnncomp-result", str(out),
                 "--json", "--output", str(tmp_path / "r.jsonl")])
    assert code == EXIT_VIOLATED  # two instances are sat
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {r["name"]: r["answer"] for r in printed} == expected
    assert {r["name"]: r["answer"] for r in read_records(tmp_path / "r.jsonl")} == expected
    import onnxruntime as ort

    session = ort.InferenceSession(str(tmp_path / "net.onnx"))
    for name, answer in expected.items():
        text = (out / f"{name.replace('/', '__')}.txt").read_text()
        assert text.splitlines()[0] == answer
        if answer == "sat":  # the witness's Y values are onnxruntime's at its X values
            values = [float(line.strip("() ").split()[1]) for line in text.splitlines()[1:]]
            x = np.asarray(values[:4], dtype=np.float32).reshape(1, 4)
            y = session.run(None, {session.get_inputs()[0].name: x})[0].ravel()
            np.testing.assert_allclose(values[4:], y, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("row, words", [
    ("net.onnx,q0.vnnlib\n", "instances.csv:2: expected 'onnx,vnnlib,timeout', got 2 field"),
    ("net.onnx,q0.vnnlib,soon\n", "instances.csv:2: the time limit must be a number of "
                                  "seconds > 0, got 'soon'"),
    ("net.onnx,q0.vnnlib,-5\n", "instances.csv:2: the time limit must be"),
    ("missing.onnx,q0.vnnlib,5\n", "instances.csv:2: no such file: "),
])
def test_a_malformed_row_is_an_error_at_its_line(tmp_path, capsys, row, words):
    make_instances(tmp_path, 1)
    csv = tmp_path / "instances.csv"
    csv.write_text(csv.read_text() + row)
    assert main(["verify", str(csv)]) == EXIT_ERROR
    err = capsys.readouterr().err
    assert words in err
    assert "Traceback" not in err


def test_limit_takes_the_first_rows_and_spec_options_are_refused(tmp_path, capsys):
    expected = make_instances(tmp_path, 4)
    csv = str(tmp_path / "instances.csv")
    main(["verify", csv, "--json", "--limit", "2"])
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["name"] for r in printed] == list(expected)[:2]
    for flag in (["--property", "x"], ["--set", "a=1"], ["--select", "0:2"]):
        assert main(["verify", csv, *flag]) == EXIT_ERROR
        assert f"instances.csv: {flag[0]} does not apply to an instance list" in \
            capsys.readouterr().err


@pytest.mark.slow  # spawned workers or a subprocess importing torch: 20-30 s here
def test_workers_give_the_serial_answers(tmp_path, capsys):
    expected = make_instances(tmp_path, 6)
    csv = str(tmp_path / "instances.csv")
    answers = {}
    for workers in ("1", "2"):
        main(["verify", csv, "--json", "--workers", workers])
        printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        answers[workers] = {r["name"]: r["answer"] for r in printed}
    assert answers["1"] == answers["2"] == expected


# -- the results log: SIGKILL, resume, SIGINT --------------------------------------------

@pytest.mark.slow  # spawned workers or a subprocess importing torch: 20-30 s here
def test_a_run_killed_in_the_middle_resumes_without_loss_or_duplicates(tmp_path):
    expected = make_instances(tmp_path, 30)
    csv, log = tmp_path / "instances.csv", tmp_path / "r.jsonl"
    proc = cli("verify", csv, "--output", log)
    try:
        wait_for_records(proc, log, 3)
        proc.kill()
        proc.wait(timeout=60)
    finally:
        proc.kill()
    before = read_records(log)
    assert 3 <= len(before) < len(expected), "the kill must land in the middle of the run"
    with open(log, "ab") as fh:  # a line cut by the kill, as a crash mid-write leaves it
        fh.write(b'{"name": "net/q29", "verdict": "rob')
    proc = cli("verify", csv, "--output", log, "--resume")
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == EXIT_VIOLATED, err
    assert f"resume: {len(before)} of 30 instances already in" in err
    after = read_records(log)
    names = [r["name"] for r in after]
    assert sorted(names) == sorted(expected)  # none lost, none twice
    assert after[:len(before)] == before  # what was written stays as it was
    assert {r["name"]: r["answer"] for r in after} == expected
    assert len(out.splitlines()) == 30 - len(before) + 1  # the rest, then the summary line


@pytest.mark.slow  # spawned workers or a subprocess importing torch: 20-30 s here
def test_sigint_stops_writes_what_finished_and_says_how_to_resume(tmp_path):
    expected = make_instances(tmp_path, 30)
    csv, log = tmp_path / "instances.csv", tmp_path / "r.jsonl"
    proc = cli("verify", csv, "--output", log, "--workers", "2")
    try:
        wait_for_records(proc, log, 2)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)  # a hang guard, not a timing assertion
    finally:
        proc.kill()
    assert proc.returncode == EXIT_INTERRUPTED
    assert "Traceback" not in err
    records = read_records(log)
    assert len(records) < 30
    assert f"robustc: {len(records)} of 30 instances are in {log}; to run the rest: " \
           f"robustc verify {csv} --output {log} --workers 2 --resume" in err
    for record in records:
        assert record["answer"] == expected[record["name"]]


def test_a_signal_sent_from_another_thread_waits_for_the_held_block():
    """SIGINT sent while the results log holds signals (another thread sends it, as the
    kernel may deliver it to any thread) interrupts after the block, not inside it."""
    steps, go, sent = [], threading.Event(), threading.Event()

    def send():  # started before the block: its signal mask is not the block's
        go.wait()
        os.kill(os.getpid(), signal.SIGINT)
        sent.set()

    sender = threading.Thread(target=send)
    sender.start()
    with pytest.raises(KeyboardInterrupt):
        with C._signals_held():
            go.set()
            sent.wait()
            for _ in range(1000):  # bytecode boundaries where a handler would run
                steps.append(1)
            steps.append("end of block")
    assert steps[-1] == "end of block"


def test_resume_refuses_a_results_file_of_another_run(tmp_path, capsys):
    make_instances(tmp_path, 2)
    csv, log = str(tmp_path / "instances.csv"), str(tmp_path / "r.jsonl")
    main(["verify", csv, "--output", log])
    q1 = tmp_path / "q1.vnnlib"
    q1.write_text(q1.read_text().replace("(assert (>= Y_0", "(assert (>= Y_1"))
    capsys.readouterr()
    assert main(["verify", csv, "--output", log, "--resume"]) == EXIT_ERROR
    err = capsys.readouterr().err
    assert "r.jsonl:1: --resume refused: the results file is from another run" in err
    assert f"file {q1} has changed (sha256 " in err
    assert main(["verify", csv, "--output", log, "--resume", "--no-attack"]) == EXIT_ERROR
    assert "option no_attack: 'False' vs 'True'" in capsys.readouterr().err
    assert main(["verify", csv, "--output", log]) == EXIT_ERROR
    assert "results file exists; add --resume" in capsys.readouterr().err
    assert len(read_records(Path(log))) == 2  # the refused runs left the file as it was


def test_a_malformed_line_in_a_results_file_is_positioned(tmp_path):
    fp = C.fingerprint("verify")
    log = C.ResultsLog(tmp_path / "r.jsonl", "c", fp)
    log.append({"name": "a", "verdict": "robust", "time_s": 1.0})
    log.close()
    with open(tmp_path / "r.jsonl", "a") as fh:
        fh.write("not json\n")
    with pytest.raises(C.SpecError, match=r"r\.jsonl:3: not a JSON line"):
        C.ResultsLog(tmp_path / "r.jsonl", "c", fp, resume=True)


# -- executors: worker errors, Ray -------------------------------------------------------

class Unpicklable(Exception):
    """An exception that cannot cross a process boundary (it holds a lock)."""

    def __init__(self, message: str):
        super().__init__(message)
        self.lock = threading.Lock()


def raise_unpicklable(shared, item):
    raise Unpicklable(f"item {item} failed on purpose")


def return_unpicklable(shared, item):
    return threading.Lock()


def square(shared, item):
    return shared + item * item


@pytest.mark.parametrize("fn, words", [
    (raise_unpicklable, "a worker failed: Unpicklable: item 1 failed on purpose"),
    (return_unpicklable, "a worker failed: ExecutorError: the worker's result cannot be sent "
                         "back: TypeError"),
])
def test_an_unpicklable_worker_error_is_a_clear_error(fn, words):
    executor = C.ProcessExecutor(1)
    try:
        with pytest.raises(C.ExecutorError) as info:
            list(executor.map_unordered(fn, None, [1]))
        assert words in str(info.value)
        assert sorted(executor.map_unordered(square, 10, [1, 2, 3])) == [11, 14, 19]
    finally:
        executor.close()


def test_an_unreachable_ray_address_is_an_error_after_a_short_timeout():
    with pytest.raises(C.ExecutorError, match="--ray 127.0.0.1:9: cannot reach a Ray head"):
        C.check_ray_address("127.0.0.1:9", timeout=2.0)
    with pytest.raises(C.ExecutorError, match="expected 'local' or HOST:PORT"):
        C.check_ray_address("nowhere")


def test_a_port_that_is_not_a_ray_head_is_an_error_after_the_timeout():
    """A listener that accepts and says nothing (not gRPC) is refused after the connect
    timeout instead of leaving ray.init retrying."""
    import socket

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        port = server.getsockname()[1]
        with pytest.raises(C.ExecutorError, match=f"--ray 127.0.0.1:{port}: cannot reach a "
                                                  f"Ray head node \\(no gRPC answer within 1 s\\)"):
            C.check_ray_address(f"127.0.0.1:{port}", timeout=1.0)


def test_verify_with_an_unreachable_ray_address_exits_2(tmp_path, capsys):
    make_instances(tmp_path, 1)
    code = main(["verify", str(tmp_path / "instances.csv"), "--ray", "127.0.0.1:9"])
    assert code == EXIT_ERROR
    err = capsys.readouterr().err
    try:
        import ray  # noqa: F401
    except ImportError:
        assert "--ray needs Ray, which is not installed" in err
    else:
        assert "--ray 127.0.0.1:9: cannot reach a Ray head node" in err


def _http2_peer(answer: bytes):
    """A listening socket whose peer reads the client's first bytes and sends ``answer``
    (HTTP/2 frames), as a web server or proxy on that port would; returns (socket, port)."""
    import socket

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)

    def serve():
        conn, _ = server.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(answer)
            time.sleep(0.5)

    threading.Thread(target=serve, daemon=True).start()
    return server, server.getsockname()[1]


def test_an_http2_peer_that_is_not_a_ray_head_is_refused_at_once():
    """A proxy or web server that speaks HTTP/2 answers the probe's gRPC call with 404 (the
    HEADERS block starts with HPACK's static index 13, ``:status 404``): refused at once,
    naming the status, instead of leaving ray.init retrying for about 20 s."""
    settings = C._h2_frame(4, 0, 0, b"")
    not_found = C._h2_frame(1, 0x4 | 0x1, 1, bytes([0x80 | 13]))
    server, port = _http2_peer(settings + not_found)
    with server:
        start = time.monotonic()
        with pytest.raises(C.ExecutorError, match=rf"--ray 127.0.0.1:{port}: the address "
                                                  r"answers, but not as a Ray head node "
                                                  r"\(HTTP 404"):
            C.check_ray_address(f"127.0.0.1:{port}", timeout=4.0)
        assert time.monotonic() - start < 4.0  # the answer decided it, not the timeout


def _grpc_trailers(status: str, message: str) -> bytes:
    """A trailers-only gRPC answer on stream 1 as a gRPC server encodes it: ``:status 200``
    by static index, content-type as a literal with incremental indexing, grpc-status and
    grpc-message as literals without indexing (the bytes a Ray 2.60 head sends)."""
    def lit(first: int, name: str, value: str) -> bytes:
        return bytes([first, len(name)]) + name.encode() + bytes([len(value)]) + value.encode()

    block = (bytes([0x80 | 8]) + lit(0x40, "content-type", "application/grpc")
             + lit(0x00, "grpc-status", status) + lit(0x00, "grpc-message", message))
    return C._h2_frame(4, 0, 0, b"") + C._h2_frame(1, 0x4 | 0x1, 1, block)


def test_a_grpc_server_without_rays_method_is_refused():
    server, port = _http2_peer(_grpc_trailers("12", "unknown service"))
    with server, pytest.raises(C.ExecutorError, match="a gRPC server answers, but not a Ray "
                                                      "head node"):
        C.check_ray_address(f"127.0.0.1:{port}", timeout=4.0)


def test_a_cluster_that_asks_for_a_token_names_the_setting(monkeypatch):
    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)
    answer = _grpc_trailers("16", "InvalidAuthToken: Authentication token is missing")
    server, port = _http2_peer(answer)
    with server, pytest.raises(C.ExecutorError, match="asks for an authentication token; "
                                                      "set RAY_AUTH_MODE=token"):
        C.check_ray_address(f"127.0.0.1:{port}", timeout=4.0)
    monkeypatch.setenv("RAY_AUTH_MODE", "token")  # Ray sends the token: the probe passes
    server, port = _http2_peer(answer)
    with server:
        C.check_ray_address(f"127.0.0.1:{port}", timeout=4.0)


def test_hpack_fields_read_static_statuses_and_plain_literals():
    assert C._hpack_fields(bytes([0x80 | 13])) == {":status": "404"}
    block = bytes([0x88, 0x00, 3]) + b"abc" + bytes([0x7F, 0x81, 0x01]) + b"x" * 255
    assert C._hpack_fields(block) == {":status": "200", "abc": "x" * 255}  # 127 + 128
    assert C._hpack_fields(bytes([0x88, 0x00, 0x83]) + b"abc") == {":status": "200"}  # Huffman


@pytest.mark.slow
def test_a_running_ray_head_passes_the_probe_and_runs_the_instances(tmp_path):
    """A real head started with ``ray start --head`` (Ray >= 2.59 turns token
    authentication on for it): without ``RAY_AUTH_MODE=token`` ``robustc verify --ray
    HOST:PORT`` exits 2 at once naming the setting; with it (Ray reads it when imported,
    so in a fresh process), the instances get onnxruntime's answers."""
    pytest.importorskip("ray", reason="Ray is not installed (pip install 'robustc[ray]')")
    import shutil
    import socket

    ray_cli = shutil.which("ray") or pytest.skip("the ray command is not on PATH")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    expected = make_instances(tmp_path, 3)
    env = {k: v for k, v in os.environ.items() if k != "RAY_AUTH_MODE"}
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    argv = [sys.executable, "-m", "robustc.cli", "verify", str(tmp_path / "instances.csv"),
            "--json", "--ray", f"127.0.0.1:{port}"]
    subprocess.run([ray_cli, "start", "--head", "--port", str(port), "--num-cpus", "2",
                    "--include-dashboard", "false"], env=env, check=True,
                   capture_output=True, timeout=120)
    try:
        plain = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120,
                               cwd=ROOT)
        token = subprocess.run(argv, env=dict(env, RAY_AUTH_MODE="token"), text=True,
                               capture_output=True, timeout=120, cwd=ROOT)
    finally:
        subprocess.run([ray_cli, "stop", "--force"], env=env, capture_output=True,
                       timeout=120)
    if plain.returncode == EXIT_ERROR:  # a Ray release that asks for the token
        assert "asks for an authentication token; set RAY_AUTH_MODE=token" in plain.stderr
    else:
        token = plain
    printed = [json.loads(line) for line in token.stdout.splitlines()]
    assert {r["name"]: r["answer"] for r in printed} == expected, token.stderr[-2000:]


@pytest.mark.slow
def test_ray_local_gives_the_serial_answers(tmp_path, capsys):
    pytest.importorskip("ray", reason="Ray is not installed (pip install 'robustc[ray]')")
    import ray

    expected = make_instances(tmp_path, 4)
    try:
        main(["verify", str(tmp_path / "instances.csv"), "--json", "--ray", "local",
              "--workers", "2"])
    finally:
        ray.shutdown()
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {r["name"]: r["answer"] for r in printed} == expected


def where_squared(shared, item):
    time.sleep(0.25)
    return item, shared + item * item, os.getpid()


@pytest.mark.slow
def test_items_run_here_while_ray_starts_and_on_ray_after():
    """``ray.init`` runs on a thread of its own: the first items run in this process while
    it starts, the rest on Ray's workers, every item exactly once with the same result."""
    pytest.importorskip("ray", reason="Ray is not installed (pip install 'robustc[ray]')")
    import ray

    try:
        executor = C.RayExecutor("local", 2)
        first = list(executor.map_unordered(where_squared, 10, list(range(12))))
        assert ray.is_initialized()
        time.sleep(1.5)  # the thread that started Ray keeps its processes alive
        later = list(executor.map_unordered(where_squared, 20, list(range(4))))
    finally:
        ray.shutdown()
    assert sorted(r[:2] for r in first) == [(i, 10 + i * i) for i in range(12)]
    here = [r[0] for r in first if r[2] == os.getpid()]
    assert here == list(range(len(here))) and here  # in order, from the first item on
    assert sorted(r[:2] for r in later) == [(i, 20 + i * i) for i in range(4)]
    assert os.getpid() not in {r[2] for r in later}  # Ray is up: all on its workers


@pytest.mark.slow
def test_a_ray_that_cannot_start_is_a_clear_error():
    pytest.importorskip("ray", reason="Ray is not installed (pip install 'robustc[ray]')")
    import ray

    executor = C.RayExecutor("local", -1)  # ray.init refuses num_cpus=-1
    try:
        with pytest.raises(C.ExecutorError, match="--ray local: "):
            list(executor.map_unordered(square, 10, list(range(3))))
    finally:
        ray.shutdown()


# -- summary and pictures ----------------------------------------------------------------

RECORDS = [{"name": f"p{i}", "verdict": v, "time_s": t, "epsilon": e} for i, (v, t, e) in
           enumerate([("robust", 1.0, 0.01), ("robust", 3.0, 0.01), ("not_robust", 2.0, 0.02),
                      ("robust", 5.0, 0.02), ("unknown", 10.0, 0.02), ("error", 0.5, 0.04)])]


def test_summary_rows_count_and_time_per_verdict():
    rows = {v: (n, med, tot) for v, n, med, tot in C.summary_rows(RECORDS)}
    assert rows["robust"] == (3, 3.0, 9.0)
    assert rows["not_robust"] == (1, 2.0, 2.0)
    assert rows["all"] == (6, 2.5, 21.5)


def test_the_curve_and_the_cactus_points():
    assert C.accuracy_points(RECORDS) == [(0.01, 1.0, 2), (0.02, 1 / 3, 3), (0.04, 0.0, 1)]
    assert C.cactus_points(RECORDS) == [1.0, 2.0, 3.0, 5.0]


NET_SPEC = """network n = onnx("net.onnx")
input x = npy("x.npy") in [0, 1] reshape [1, 4]
""" + "".join(f"""verify p{i} on n:
    forall x' in linf(x, {eps}):
        argmax == {{label}}
""" for i, eps in enumerate([0.001, 0.01, 0.3, 0.5]))


def net_spec(tmp_path: Path) -> Path:
    """``p.rspec`` (NET_SPEC) on the instance list's network at x = 0.5, with the class
    onnxruntime gives x as its label."""
    import onnxruntime as ort

    make_instances(tmp_path, 1)
    x = np.full((1, 4), 0.5, dtype=np.float32)
    np.save(tmp_path / "x.npy", x)
    session = ort.InferenceSession(str(tmp_path / "net.onnx"))
    label = int(np.argmax(session.run(None, {session.get_inputs()[0].name: x})[0]))
    (tmp_path / "p.rspec").write_text(NET_SPEC.format(label=label))
    return tmp_path / "p.rspec"


def test_plot_of_a_spec_with_several_budgets_is_a_certified_accuracy_curve(tmp_path, capsys):
    from PIL import Image

    net_spec(tmp_path)
    plot = tmp_path / "curve.png"
    main(["verify", str(tmp_path / "p.rspec"), "--json", "--plot", str(plot),
          "--output", str(tmp_path / "r.jsonl")])
    records = read_records(tmp_path / "r.jsonl")
    assert [r["epsilon"] for r in records] == [0.001, 0.01, 0.3, 0.5]
    assert records[0]["verdict"] == "robust"  # a forward pass decides so small a box
    assert "accuracy plot" in capsys.readouterr().err
    with Image.open(plot) as image:
        assert image.size[0] > 100


def run_on_a_terminal(argv: list) -> tuple[str, str]:
    """Run robustc with stderr on a pseudo-terminal (stdout a pipe); returns both."""
    import fcntl
    import re
    import struct
    import termios

    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-m", "robustc.cli", *map(str, argv)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=slave, env=env)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # the terminal closes when the process ends (EIO on Linux)
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    out = proc.communicate(timeout=300)[0].decode()
    return out, re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", b"".join(chunks).decode())


@pytest.mark.slow  # two runs of a subprocess importing torch: about 20 s here
def test_the_progress_bar_shows_on_a_terminal_without_garbling_the_lines(tmp_path):
    import re

    net_spec(tmp_path)
    out, err = run_on_a_terminal(["verify", tmp_path / "p.rspec"])
    pieces = [p.strip() for p in re.split(r"[\r\n]", err)]
    for i in range(4):  # each progress line whole, on a line of its own
        assert f"p{i}: verifying on 'n' (4 input values may change) ..." in pieces
    bars = [p for p in pieces if "inst" in p and "/4" in p]
    assert bars and any("robust" in p for p in bars)  # the counts per verdict
    assert any(re.search(r"<[0-9?:]", p) for p in bars)  # the ETA
    assert "verdict       count  median_s   total_s" in pieces
    assert [line.split(":")[0] for line in out.splitlines()[:4]] == ["p0", "p1", "p2", "p3"]
    _, quiet = run_on_a_terminal(["verify", tmp_path / "p.rspec", "--quiet"])
    assert "inst" not in quiet and "verifying on" not in quiet and "median_s" not in quiet


# -- maximize on the campaign runner -----------------------------------------------------

@pytest.mark.slow  # two spawned workers importing torch: about 25 s here
def test_maximize_on_workers_certifies_what_the_exact_oracle_proves(tmp_path, capsys):
    """Three maximize properties of the tiny network of tests/layered on 2 workers with a
    results file: every budget found is robust by tests/layered/tiny.py's exact LP oracle,
    and the serial run finds the same budgets."""
    from tests.layered import tiny

    params = tiny.weights()
    tiny.write_onnx(tmp_path / "tiny.onnx", params)
    region = np.zeros((tiny.H, tiny.W), dtype=bool)
    region[:, 0] = True
    np.save(tmp_path / "x.npy", params["x0"].reshape(1, tiny.H, tiny.W))
    np.save(tmp_path / "obj.npy", region)
    text = ('network n = onnx("tiny.onnx")\ninput x = npy("x.npy") reshape [1, 1, 3, 4]\n'
            'labels two = ["a", "b"]\ndecode n as multilabel(logit > 0) over two\n'
            'region obj = mask("obj.npy")\n')
    for name, method in (("fixed", "oracle(cutting=fixed, iterations=10)"),
                         ("naive", "naive"), ("sens", "oracle(iterations=10)")):
        text += (f'maximize keep_{name} on n:\n    layered(x, rings(obj, chebyshev, 2)) such '
                 f'that present("a")\n    weights [1, 1, 1]\n    method {method}\n')
    (tmp_path / "t.rspec").write_text(text)
    found = {}
    for workers in ("2", "1"):
        log = tmp_path / f"r{workers}.jsonl"
        code = main(["maximize", str(tmp_path / "t.rspec"), "--call-timeout", "20", "--json",
                     "--workers", workers, "--results", str(log)])
        assert code == 0
        capsys.readouterr()
        found[workers] = {r["name"]: r["result"]["eps"] for r in read_records(log)}
    assert found["1"] == found["2"]
    assert sorted(found["2"]) == ["keep_fixed", "keep_naive", "keep_sens"]
    lows = params["x0"].astype(np.float64)
    from robustc.specs.rings import layer_indices

    rings = layer_indices(region, "chebyshev", 2)
    for eps in found["2"].values():
        radius = np.zeros(lows.shape)
        for layer, e in enumerate(eps):
            radius.reshape(-1)[np.asarray(rings).reshape(-1) == layer] = e
        lower = np.clip(lows - radius.reshape(lows.shape), 0, 1)
        upper = np.clip(lows + radius.reshape(lows.shape), 0, 1)
        assert tiny.min_margin(params, lower, upper) > 0
