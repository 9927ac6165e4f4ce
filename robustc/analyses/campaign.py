"""Campaigns: many independent instances (properties, VNN-COMP csv rows, chunks of samples)
run on local worker processes or a Ray cluster, with a results log that survives a crash.

Executors (:func:`make_executor`) run ``fn(shared, item)`` for every item and yield the
results as they complete:

* :class:`SerialExecutor`: in this process, in order;
* :class:`ProcessExecutor`: ``workers`` spawned local processes, each limited to ``threads``
  torch / BLAS / OpenMP threads (:func:`limit_threads`, run once in every worker);
* :class:`RayExecutor`: Ray tasks (``"local"`` starts Ray on this machine), one CPU each and
  the same thread limit. An address that does not answer within :data:`RAY_CONNECT_S`
  seconds is an :class:`~robustc.errors.ExecutorError`, not a hang.

A worker's exception crosses back as :class:`WorkerFailure` (type, message and traceback as
text) whatever it holds, so an exception or a result that cannot be pickled is a clear
error instead of a broken pool.

The results log (:class:`ResultsLog`) is a JSON-lines file: a header line with the
campaign's fingerprint (the sha256 of the spec or instance list and of the networks it
names, and the options that change verdicts),
then one line per finished instance, appended, flushed and fsynced as the instance ends. A
process killed in the middle of a line leaves a partial last line, which reading drops
(and appending replaces); ``resume`` reads the finished instances so a caller runs only the
rest, and refuses a log whose fingerprint differs, naming each difference.

:func:`summary_rows`, :func:`cactus_plot` and :func:`accuracy_plot` turn the records
(dicts with ``name``, ``verdict``, ``time_s`` and, for a curve, ``epsilon``) into the summary
table and the field's usual pictures. See docs/campaigns.md.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import statistics
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from robustc.errors import Error, MissingComponent, OutputError, SpecError

#: Seconds to wait for a Ray address to accept a connection before giving up.
RAY_CONNECT_S = 5.0


class ExecutorError(Error, RuntimeError):
    """A worker pool or cluster could not be used (unreachable Ray address, a worker that
    died, a result that cannot cross back)."""


@dataclass(frozen=True)
class WorkerFailure:
    """An exception raised in a worker, as text (always picklable)."""

    kind: str
    message: str
    trace: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.message}"


def limit_threads(threads: int) -> None:
    """Limit this process to ``threads`` torch, BLAS and OpenMP threads (environment for
    libraries not loaded yet, torch and threadpoolctl for those already loaded)."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(threads)
    try:
        import torch

        torch.set_num_threads(threads)
    except ImportError:  # torch is a dependency; a stripped environment still runs the rest
        pass
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(threads)
    except ImportError:
        pass


def call_in_worker(fn: Callable, shared, item):
    """``fn(shared, item)``, with any exception (or an unpicklable result) turned into a
    :class:`WorkerFailure`, so that what crosses back to the parent always pickles."""
    import pickle

    try:
        result = fn(shared, item)
    except Exception as exc:  # noqa: BLE001 - every failure is reported, as text
        return WorkerFailure(type(exc).__name__, str(exc), traceback.format_exc())
    try:
        pickle.dumps(result)
    except Exception as exc:  # noqa: BLE001
        return WorkerFailure("ExecutorError", f"the worker's result cannot be sent back: "
                             f"{type(exc).__name__}: {exc}", "")
    return result


def unwrap(result):
    """A worker's result, or :class:`ExecutorError` for a :class:`WorkerFailure` (a robustc
    error keeps its message: it is the user's input that failed)."""
    if isinstance(result, WorkerFailure):
        raise ExecutorError(f"a worker failed: {result}")
    return result


class SerialExecutor:
    """Runs items one after the other in this process (exceptions propagate as they are)."""

    workers = 1

    def map_unordered(self, fn: Callable, shared, items: Iterable) -> Iterator:
        """Yield ``fn(shared, item)`` for every item, in order."""
        for item in items:
            yield fn(shared, item)

    def close(self, wait: bool = True) -> None:
        """Nothing to release."""


def _init_worker(threads: int, warm_up: Callable | None = None) -> None:
    """Each local worker: its thread budget, and SIGINT left to the parent (Ctrl-C reaches
    the whole process group; the parent ends the workers itself, without their tracebacks)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:  # stdout is the parent's (results, JSON): a worker's stray output goes to stderr
        os.dup2(2, 1)
    except OSError:
        pass
    limit_threads(threads)
    if warm_up is not None:
        warm_up()


class ProcessExecutor:
    """Runs items on ``workers`` spawned local processes, each with ``threads`` threads.

    ``warm_up`` (a picklable function) runs once in every worker before its first item
    (imports, first-call costs), so that they do not count against the first item's time
    limit. Spawned workers re-import the caller's ``__main__``: scripts need the usual
    ``if __name__ == "__main__":`` guard. Raises :class:`ExecutorError` when a worker dies.
    """

    def __init__(self, workers: int, threads: int = 1, warm_up: Callable | None = None):
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        self.workers, self.threads = workers, threads
        self._pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                         initializer=_init_worker,
                                         initargs=(threads, warm_up))

    def map_unordered(self, fn: Callable, shared, items: Iterable) -> Iterator:
        """Yield ``fn(shared, item)`` for every item as they complete."""
        from concurrent.futures import as_completed
        from concurrent.futures.process import BrokenProcessPool

        futures = [self._pool.submit(call_in_worker, fn, shared, item) for item in items]
        try:
            for fut in as_completed(futures):
                yield unwrap(fut.result())
        except BrokenProcessPool:
            raise ExecutorError("a worker process died (killed, or out of memory); the "
                                "results already written stay valid") from None

    def close(self, wait: bool = True) -> None:
        """Shut the pool down: after the running items, or (``wait=False``: an interrupt)
        at once, ending the workers (an item can run for many seconds)."""
        if not wait:  # ProcessPoolExecutor has no public way to end workers before 3.14
            for proc in list((getattr(self._pool, "_processes", None) or {}).values()):
                proc.terminate()
        self._pool.shutdown(wait=wait, cancel_futures=True)


_WARM: set = set()


def _ray_worker(threads: int, warm_up: Callable | None, fn: Callable, shared, item):
    limit_threads(threads)
    if warm_up is not None and warm_up not in _WARM:  # once per Ray worker process
        warm_up()
        _WARM.add(warm_up)
    return call_in_worker(fn, shared, item)


#: The gRPC method probed on a Ray head (the GCS): present in every Ray 2.x release.
RAY_PROBE_PATH = "/ray.rpc.NodeInfoGcsService/GetClusterId"
#: HPACK static-table indices of ``:status`` values (RFC 7541, appendix A).
_HPACK_STATUS = {8: 200, 9: 204, 10: 206, 11: 304, 12: 400, 13: 404, 14: 500}


def _h2_frame(kind: int, flags: int, stream: int, payload: bytes) -> bytes:
    return (len(payload).to_bytes(3, "big") + bytes((kind, flags))
            + stream.to_bytes(4, "big") + payload)


def _h2_literal(name: str, value: str) -> bytes:
    """An HPACK header field: literal, not indexed, new name, no Huffman coding."""
    name_b, value_b = name.encode(), value.encode()
    return b"\x00" + bytes((len(name_b),)) + name_b + bytes((len(value_b),)) + value_b


def _h2_frames(conn, deadline: float):
    """Yield ``(type, flags, stream, payload)`` frames read from ``conn`` until
    ``deadline`` (``time.monotonic()``) or the peer closes."""
    buf = b""
    while True:
        while len(buf) >= 9 and len(buf) >= 9 + int.from_bytes(buf[:3], "big"):
            n = int.from_bytes(buf[:3], "big")
            yield buf[3], buf[4], int.from_bytes(buf[5:9], "big") & 0x7FFFFFFF, buf[9:9 + n]
            buf = buf[9 + n:]
        left = deadline - time.monotonic()
        if left <= 0:
            return
        conn.settimeout(left)
        try:
            chunk = conn.recv(65536)
        except OSError:  # a timeout included
            return
        if not chunk:
            return
        buf += chunk


def _hpack_int(data: bytes, pos: int, prefix: int) -> tuple[int, int]:
    """An HPACK integer with a ``prefix``-bit prefix at ``data[pos]``: (value, next)."""
    mask = (1 << prefix) - 1
    value, pos = data[pos] & mask, pos + 1
    if value < mask:
        return value, pos
    shift = 0
    while True:
        byte = data[pos]
        value, pos, shift = value + ((byte & 0x7F) << shift), pos + 1, shift + 7
        if not byte & 0x80:
            return value, pos


def _hpack_fields(block: bytes) -> dict:
    """The header fields of an HPACK block that need neither Huffman decoding nor the
    dynamic table (the static table's ``:status`` values and plain literals, which is how
    gRPC servers send a trailers-only answer); stops at the first field it cannot read."""
    fields, pos = {}, 0
    try:
        while pos < len(block):
            byte = block[pos]
            if byte & 0x80:                                   # indexed field
                index, pos = _hpack_int(block, pos, 7)
                if index not in _HPACK_STATUS:
                    break
                fields[":status"] = str(_HPACK_STATUS[index])
                continue
            if byte & 0xE0 == 0x20:                           # dynamic table size update
                _, pos = _hpack_int(block, pos, 5)
                continue
            prefix = 6 if byte & 0x40 else 4
            index, pos = _hpack_int(block, pos, prefix)
            if index:                                         # a name from a table
                break
            strings = []
            for _ in range(2):
                if block[pos] & 0x80:                         # Huffman-coded
                    return fields
                length, pos = _hpack_int(block, pos, 7)
                strings.append(block[pos:pos + length].decode("latin-1"))
                pos += length
            fields[strings[0]] = strings[1]
    except IndexError:
        pass
    return fields


def _grpc_answer(conn, host: str, port: int, deadline: float) -> dict | None:
    """The response header fields (:func:`_hpack_fields`) of a unary gRPC call of
    :data:`RAY_PROBE_PATH` (an empty request) on an open connection, or None when no
    response header came before ``deadline``."""
    headers = b"".join(_h2_literal(k, v) for k, v in (
        (":method", "POST"), (":scheme", "http"), (":path", RAY_PROBE_PATH),
        (":authority", f"{host}:{port}"), ("content-type", "application/grpc"),
        ("te", "trailers")))
    conn.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + _h2_frame(4, 0, 0, b"")
                 + _h2_frame(1, 0x4, 1, headers)              # HEADERS, END_HEADERS
                 + _h2_frame(0, 0x1, 1, b"\x00" * 5))         # DATA: empty message, END_STREAM
    for kind, flags, stream, payload in _h2_frames(conn, deadline):
        if kind != 1 or stream != 1:
            continue
        if flags & 0x8:                                       # PADDED
            payload = payload[1:len(payload) - payload[0]]
        if flags & 0x20:                                      # PRIORITY
            payload = payload[5:]
        return _hpack_fields(payload)
    return None


def check_ray_address(address: str, timeout: float = RAY_CONNECT_S) -> None:
    """Raise :class:`ExecutorError` unless ``HOST:PORT`` (or ``ray://HOST:PORT``) accepts a
    TCP connection and answers a gRPC call of a Ray head's method within ``timeout``
    seconds; ``local`` and ``auto`` pass. Refused at once, instead of leaving ``ray.init``
    retrying for about 20 s: a peer that answers HTTP/2 with another status than 200 (a
    proxy, a web server: 404), a gRPC server without Ray's method (``UNIMPLEMENTED``), and
    a cluster that asks for a token (``UNAUTHENTICATED``) while ``RAY_AUTH_MODE`` is not
    ``token`` here (Ray would not send one)."""
    import socket

    if address in ("local", "auto"):
        return
    hostport = address.split("://", 1)[-1]
    host, sep, port = hostport.rpartition(":")
    if not sep or not port.isdigit():
        raise ExecutorError(f"--ray {address!r}: expected 'local' or HOST:PORT of a Ray "
                            f"head node")
    deadline = time.monotonic() + timeout
    try:
        with socket.create_connection((host, int(port)), timeout=timeout) as conn:
            answer = _grpc_answer(conn, host, int(port), deadline)
    except OSError as exc:
        raise ExecutorError(f"--ray {address}: cannot reach a Ray head node "
                            f"({exc.strerror or exc} after at most {timeout:g} s)") from None
    if answer is None:
        raise ExecutorError(f"--ray {address}: cannot reach a Ray head node (no gRPC "
                            f"answer within {timeout:g} s)")
    status = answer.get(":status", "200")
    if status != "200":
        raise ExecutorError(f"--ray {address}: the address answers, but not as a Ray head "
                            f"node (HTTP {status} to a call of {RAY_PROBE_PATH})")
    grpc = answer.get("grpc-status")
    if grpc == "12":                                          # UNIMPLEMENTED
        raise ExecutorError(f"--ray {address}: a gRPC server answers, but not a Ray head "
                            f"node (it does not know {RAY_PROBE_PATH})")
    if grpc == "16" and os.environ.get("RAY_AUTH_MODE", "").lower() != "token":
        raise ExecutorError(f"--ray {address}: the Ray cluster asks for an authentication "
                            f"token; set RAY_AUTH_MODE=token, with the cluster's token in "
                            f"RAY_AUTH_TOKEN or ~/.ray/auth_token (Ray's token "
                            f"authentication), and run again")


def _not_main_thread_note(record) -> bool:
    """Drop Ray's note that ``ray.init`` off the main thread leaves SIGTERM alone (robustc
    handles SIGTERM itself)."""
    return "SIGTERM handler is not set" not in record.getMessage()


class _RayBoot:
    """``ray.init`` on a thread of its own, so that the caller runs items while Ray starts
    (3.9 s on an idle 2-core machine, 8-13 s on a busy one).

    The thread stays alive until Ray is shut down: the processes Ray starts (GCS, raylet)
    die with the thread that started them, so a thread that ended after ``ray.init`` would
    take the local cluster with it."""

    def __init__(self, ray, address: str, kwargs: dict):
        import threading

        self._ray, self.address, self._kwargs = ray, address, kwargs
        logging.getLogger("ray._private.worker").addFilter(_not_main_thread_note)
        self.done = threading.Event()
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="robustc-ray-init",
                                        daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._ray.init(address=self.address,  # "local": a new instance, never an
                           include_dashboard=False, log_to_driver=False,  # existing one
                           **self._kwargs)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller by wait()
            self.error = exc
            return
        finally:
            self.done.set()
        while self._ray.is_initialized():  # keep Ray's processes alive (see above)
            time.sleep(0.5)

    def wait(self) -> None:
        """Block until Ray is up; raises :class:`ExecutorError` if it could not start."""
        self.done.wait()
        exc = self.error
        if isinstance(exc, (ConnectionError, RuntimeError, ValueError)):
            raise ExecutorError(f"--ray {self.address}: {exc}") from None
        if exc is not None:
            raise exc


class RayExecutor:
    """Runs items as Ray tasks (``address``: a cluster's ``HOST:PORT``, ``"local"``: a Ray
    instance started on this machine with ``workers`` CPUs), one CPU and ``threads`` threads
    each.

    When Ray is not running yet it is started (or connected to) on a thread of its own, and
    :meth:`map_unordered` runs items in this process, one at a time, until it is up; the
    rest go to Ray. An item's result does not depend on where it ran (the same ``fn``; an
    item that ends on its time limit may end elsewhere on a busier CPU, as with any
    executor).

    Raises :class:`~robustc.errors.MissingComponent` (an ``ImportError``) with the install
    hint when Ray is missing and :class:`ExecutorError` when the address cannot be reached
    (checked before anything runs) or Ray cannot start (raised by :meth:`map_unordered`
    after the items already run here are yielded).
    """

    def __init__(self, address: str = "local", workers: int | None = None, threads: int = 1,
                 warm_up: Callable | None = None):
        try:
            import ray
        except ImportError:
            raise MissingComponent("--ray needs Ray, which is not installed: pip install "
                                   "'robustc[ray]'") from None
        self._ray, self.threads, self.warm_up = ray, threads, warm_up
        self._workers, self._boot = workers, None
        if not ray.is_initialized():
            check_ray_address(address)
            kwargs = {"num_cpus": workers} if address == "local" and workers else {}
            self._boot = _RayBoot(ray, address, kwargs)

    @property
    def workers(self) -> int:
        """The number of Ray workers: as asked, or the cluster's CPUs (waits for Ray)."""
        if self._workers:
            return self._workers
        self._started()
        return int(self._ray.cluster_resources().get("CPU", 1))

    def _started(self) -> None:
        if self._boot is not None:
            self._boot.wait()
            self._boot = None

    def map_unordered(self, fn: Callable, shared, items: Iterable) -> Iterator:
        """Yield ``fn(shared, item)`` for every item as they complete: here while Ray
        starts, then on Ray."""
        items = list(items)
        first = 0
        while first < len(items) and self._boot is not None and not self._boot.done.is_set():
            yield fn(shared, items[first])
            first += 1
        self._started()
        if first == len(items):
            return
        ref = self._ray.put(shared)
        remote = self._ray.remote(num_cpus=1)(_ray_worker)
        pending = [remote.remote(self.threads, self.warm_up, fn, ref, item)
                   for item in items[first:]]
        while pending:
            done, pending = self._ray.wait(pending, num_returns=1)
            yield unwrap(self._ray.get(done[0]))

    def close(self, wait: bool = True) -> None:
        """Leave Ray running (the caller owns ``ray.shutdown``); ``wait``: let a start
        still under way finish first."""
        if wait and self._boot is not None:
            self._boot.done.wait()


def make_executor(workers: int = 1, ray_address: str | None = None, threads: int = 1,
                  warm_up: Callable | None = None):
    """Serial for one worker, a process pool for more, Ray when ``ray_address`` is given;
    every worker limited to ``threads`` threads and warmed up by ``warm_up``."""
    if ray_address:
        return RayExecutor(ray_address, workers if workers > 1 else None, threads, warm_up)
    return ProcessExecutor(workers, threads, warm_up) if workers > 1 else SerialExecutor()


# -- the results log ---------------------------------------------------------------------

def fingerprint(kind: str, options: dict | None = None,
                files: Iterable[str | Path] = ()) -> dict:
    """What decides a campaign's answers, hashed part by part: its kind, the options that
    change verdicts (``--set`` items included) and the sha256 of each file (the spec or
    instance list and every network it names). :class:`ResultsLog` compares them one by one
    to name what differs."""
    digests = {}
    for path in files:
        digests[str(path)] = hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]
    return {"kind": kind, "options": {k: str(v) for k, v in sorted((options or {}).items())},
            "files": digests}


def _differences(old: dict, new: dict) -> list[str]:
    """What differs between two fingerprints, in words."""
    out = [f"kind {old.get('kind')!r} vs {new['kind']!r}"] if old.get("kind") != new["kind"] \
        else []
    o_opts, n_opts = old.get("options", {}), new["options"]
    out += [f"option {k}: {o_opts.get(k)!r} vs {n_opts.get(k)!r}"
            for k in sorted(set(o_opts) | set(n_opts)) if o_opts.get(k) != n_opts.get(k)]
    o_files, n_files = old.get("files", {}), new["files"]
    names = {Path(f).name: h for f, h in o_files.items()}
    for f, h in n_files.items():
        before = o_files.get(f, names.get(Path(f).name))
        if before is None:
            out.append(f"file {f} is not in the results file's run")
        elif before != h:
            out.append(f"file {f} has changed (sha256 {before} vs {h})")
    gone = set(o_files) - set(n_files)
    known = {Path(f).name for f in n_files}
    out += [f"file {f} is not in this run" for f in sorted(gone) if Path(f).name not in known]
    return out


@contextmanager
def _signals_held():
    """Hold SIGINT and SIGTERM for the block (main thread); they arrive after it.

    Python runs signal handlers in the main thread whatever thread the kernel delivered
    the signal to, so a mask on the main thread alone does not hold them while other
    threads (a worker pool's, PyTorch's) run: the handlers are swapped for one that notes
    the signal, and the noted signals are raised again once the old handlers are back."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []
    saved = {}
    for signum in (signal.SIGINT, signal.SIGTERM):
        saved[signum] = signal.signal(signum, lambda n, _frame: pending.append(n))
    try:
        yield
    finally:
        for signum, handler in saved.items():
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)
        for signum in dict.fromkeys(pending):
            signal.raise_signal(signum)


class ResultsLog:
    """A JSON-lines results file: header ``{"campaign": ..., "fingerprint": ...}``, then one
    record per finished instance (``record["name"]`` is the instance's key).

    ``resume=False`` refuses an existing non-empty file (``SpecError``: say ``--resume`` or
    remove it); ``resume=True`` reads it (a missing file starts a new one), refuses another
    campaign's file, drops a partial last line and keeps the records in :attr:`done`.
    Raises ``OutputError`` when the file cannot be written.
    """

    def __init__(self, path: str | Path, campaign: str, fp: dict, resume: bool = False):
        self.path, self.campaign, self.fingerprint = Path(path), campaign, fp
        self.done: dict[str, dict] = {}
        exists = self.path.is_file() and self.path.stat().st_size > 0
        if exists and not resume:
            raise SpecError(f"{self.path}: results file exists; add --resume to run only the "
                            f"instances missing from it, or remove it")
        good = self._read() if exists else 0
        try:
            # unbuffered: each record is one write call, nothing waits in a buffer
            self._fh = open(self.path, "r+b" if exists else "wb", buffering=0)
            self._fh.truncate(good)  # a partial last line from a killed run goes
            self._fh.seek(good)
        except OSError as exc:
            raise OutputError(f"cannot write {self.path}: {exc.strerror or exc}") from None
        if not exists:
            self._append({"campaign": campaign, "fingerprint": fp})

    def _read(self) -> int:
        """Read header and records; returns the byte length of the complete lines."""
        data = self.path.read_bytes()
        end = data.rfind(b"\n") + 1
        lines = data[:end].decode("utf-8", "replace").splitlines()
        header = self._parse(lines[0], 1) if lines else None
        if not header or not isinstance(header.get("fingerprint"), dict):
            raise SpecError(f"{self.path}:1: not a robustc results file (no header line)")
        differ = _differences(header["fingerprint"], self.fingerprint)
        if differ or header.get("campaign") != self.campaign:
            raise SpecError(
                f"{self.path}:1: --resume refused: the results file is from another run "
                f"({header.get('campaign')!r}; this is {self.campaign!r}): "
                + ("; ".join(differ) or "same files and options"))
        for number, line in enumerate(lines[1:], start=2):
            record = self._parse(line, number)
            self.done[record["name"]] = record
        return end

    def _parse(self, line: str, number: int) -> dict:
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            raise SpecError(f"{self.path}:{number}: not a JSON line ({exc.msg})") from None
        if not isinstance(value, dict) or (number > 1 and "name" not in value):
            raise SpecError(f"{self.path}:{number}: not a results record")
        return value

    def _append(self, value: dict) -> None:
        from robustc.files import json_text

        try:
            self._fh.write((json_text(value) + "\n").encode())
            os.fsync(self._fh.fileno())
        except OSError as exc:
            raise OutputError(f"cannot write {self.path}: {exc.strerror or exc}") from None

    def append(self, record: dict) -> None:
        """Append one finished instance's record (fsynced before returning). SIGINT and
        SIGTERM wait until the line is on disk and in :attr:`done`, so that what the file
        holds and what an interrupted caller reports agree."""
        with _signals_held():
            self._append(record)
            self.done[record["name"]] = record

    def close(self) -> None:
        """Close the file (every record is already on disk)."""
        self._fh.close()


# -- summary and pictures ----------------------------------------------------------------

def summary_rows(records: Iterable[dict]) -> list[tuple[str, int, float, float]]:
    """``(verdict, count, median s, total s)`` per verdict (in order of first appearance),
    then ``("all", ...)``."""
    records = list(records)
    groups: dict[str, list[float]] = {}
    for r in records:
        groups.setdefault(r["verdict"], []).append(float(r.get("time_s", 0.0)))
    groups["all"] = [float(r.get("time_s", 0.0)) for r in records]
    return [(v, len(ts), statistics.median(ts) if ts else 0.0, sum(ts))
            for v, ts in groups.items()]


def summary_table(records: Iterable[dict]) -> str:
    """The summary as a small text table (verdict, count, median and total time)."""
    lines = [f"{'verdict':12} {'count':>6} {'median_s':>9} {'total_s':>9}"]
    lines += [f"{v:12} {n:6d} {med:9.2f} {tot:9.1f}" for v, n, med, tot in
              summary_rows(records)]
    return "\n".join(lines)


def cactus_points(records: Iterable[dict], solved=("robust", "not_robust")) -> list[float]:
    """The sorted times of the solved instances: the cactus plot has point ``(t_k, k+1)``."""
    return sorted(float(r["time_s"]) for r in records if r["verdict"] in solved)


def accuracy_points(records: Iterable[dict]) -> list[tuple[float, float, int]]:
    """``(epsilon, verified fraction, instances)`` per epsilon, ascending: the certified
    accuracy curve (``robust`` counts as verified; anything else, unknown included, not).
    Raises ``SpecError`` when a record has no ``epsilon``."""
    by_eps: dict[float, list[bool]] = {}
    for r in records:
        if r.get("epsilon") is None:
            raise SpecError(f"{r['name']}: no epsilon for the certified-accuracy curve")
        by_eps.setdefault(float(r["epsilon"]), []).append(r["verdict"] == "robust")
    return [(e, sum(v) / len(v), len(v)) for e, v in sorted(by_eps.items())]


def _save(fig, path: str | Path) -> Path:
    import io

    from robustc.files import write_bytes

    buf = io.BytesIO()
    fig.savefig(buf, format=Path(path).suffix.lstrip(".") or "png", dpi=120,
                bbox_inches="tight")
    return write_bytes(path, buf.getvalue())


def _figure():
    try:
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib.figure import Figure
    except ImportError:
        raise MissingComponent("--plot needs matplotlib: pip install matplotlib") from None
    fig = Figure(figsize=(5, 3.5))
    return fig, fig.add_subplot()


def cactus_plot(path: str | Path, records: Iterable[dict], title: str = "") -> Path:
    """Instances solved (robust or not robust) vs time, written to ``path`` (all or
    nothing; the format from the suffix)."""
    records = list(records)
    times = cactus_points(records)
    fig, ax = _figure()
    ax.step([0.0, *times], range(len(times) + 1), where="post")
    ax.set_xlabel("time per instance (s)")
    ax.set_ylabel("instances solved")
    ax.set_ylim(0, max(len(records), 1))
    ax.set_title(title or f"{len(times)} of {len(records)} solved")
    ax.grid(alpha=0.3)
    return _save(fig, path)


def accuracy_plot(path: str | Path, records: Iterable[dict], title: str = "") -> Path:
    """Verified fraction vs epsilon (certified accuracy), written to ``path``."""
    points = accuracy_points(records)
    fig, ax = _figure()
    ax.plot([p[0] for p in points], [p[1] for p in points], marker="o")
    ax.set_xlabel("epsilon")
    ax.set_ylabel("verified fraction")
    ax.set_ylim(0, 1.02)
    ax.set_title(title or f"certified accuracy ({sum(p[2] for p in points)} instances)")
    ax.grid(alpha=0.3)
    return _save(fig, path)


__all__ = ["RAY_CONNECT_S", "ExecutorError", "WorkerFailure", "limit_threads",
           "call_in_worker", "unwrap", "SerialExecutor", "ProcessExecutor", "RayExecutor",
           "check_ray_address", "make_executor", "fingerprint", "ResultsLog", "summary_rows",
           "summary_table", "cactus_points", "accuracy_points", "cactus_plot", "accuracy_plot"]
