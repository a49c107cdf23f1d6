"""The Ray engine: the same job through Ray Data, on a local Ray instance or an existing cluster.

recordings -> a Dataset of small blocks -> `map_batches` with a fixed-size actor pool, each actor
holding one Analyzer (the model loaded once per actor) -> rows (the same `analyze_row` as the local
engine) -> streamed back to the driver, which writes them with the same atomic part writer. Writing
in the driver keeps one set of rules for both engines: parts appear whole or not at all, and a rerun
skips what any earlier run (local or Ray) finished.

On a cluster every node must see the recordings at the same paths (a shared file system) and have
ser-tool installed; only the driver writes the output folder. Ray is imported only here.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from ser_tool.batch.inputs import Recording
from ser_tool.batch.rows import analyze_row, crash_row, rows_to_table
from ser_tool.errors import BackendError, ConfigError, SERError

__all__ = ["run_ray"]

FILES_PER_CALL = 8  # recordings per actor call: small enough to balance, large enough to amortise a call


def _import_ray():
    try:
        import ray
        import ray.data
    except ImportError:
        raise ConfigError("the ray engine needs Ray Data, which is not installed: pip install -e '.[ray]'") from None
    return ray


class _AnalyzerActor:
    """One per Ray actor: builds the Analyzer (loads the model) once, then analyses batches of recordings."""

    def __init__(self, make_analyzer: Callable[[], Any]) -> None:
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        self._error: BaseException | None = None
        try:
            self._analyzer = make_analyzer()
            self._analyzer.backend
        except BaseException as e:  # raised with the first batch, where the driver sees it as the job's error
            self._error = e

    def __call__(self, batch):
        import pyarrow as pa

        recs = batch.to_pylist()
        rows, fatal = [], None
        try:
            if self._error is not None:
                raise self._error
            for rec in recs:
                i = rec.pop("i")
                rows.append((i, analyze_row(self._analyzer, Recording(**rec))))
        except BaseException as e:  # FATAL_ERRORS or a failed model load; Ray would pass on only its text
            fatal, rows = f"{type(e).__name__}\t{e}", [(recs[0]["i"], {})]
        table = rows_to_table([row for _, row in rows])
        table = table.append_column("i", pa.array([i for i, _ in rows], pa.int64()))
        return table.append_column("fatal", pa.array([fatal] * len(rows), pa.string()))


def _raise_fatal(text: str) -> None:
    """Re-raise, in the driver, the error that stopped an actor (its class, when it is one of ours)."""
    import ser_tool.errors as errors

    name, _, message = text.partition("\t")
    cls = getattr(errors, name, None)
    if isinstance(cls, type) and issubclass(cls, SERError):
        raise cls(message)
    raise BackendError(f"a Ray worker failed to load or run the model ({name}: {message})")


# The HTTP/2 client preface and an empty SETTINGS frame: a gRPC server (Ray's GCS, Ray Client) answers
# with a SETTINGS frame of its own.
_H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])
PROBE_SECONDS = 5.0


def _probe(address: str, timeout: float | None = None) -> None:
    """Raise ConfigError unless a gRPC server answers at `address` within `timeout` (PROBE_SECONDS) seconds.

    `ray.init` waits minutes on an address where nothing listens, or where something other than Ray
    does (a dashboard, a typo'd port); this turns those mistakes into an error in seconds.
    """
    timeout = PROBE_SECONDS if timeout is None else timeout
    target = address.removeprefix("ray://")
    host, sep, port = target.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ConfigError(f"the Ray address {address!r} is not HOST:PORT: give the head node's GCS address (HOST:6379, "
                          "or the port the head was started with), ray://HOST:10001 for Ray Client, or auto")
    where = f"the Ray cluster at {address}"
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout) as s:
            if os.environ.get("RAY_USE_TLS", "0").lower() in ("1", "true"):  # Ray's own setting: a TLS handshake first
                return
            head = _exchange(s, _H2_PREFACE, 9)
    except socket.gaierror:
        raise ConfigError(f"cannot reach {where}: no such host {host!r}. Check the address (the head node's "
                          "'ray start --head' prints it)") from None
    except ConnectionRefusedError:
        raise ConfigError(f"cannot reach {where}: nothing listens on port {port} there. Start the head with "
                          "'ray start --head' or check the port it printed") from None
    except TimeoutError:
        raise ConfigError(f"cannot reach {where}: no answer within {timeout:.0f} s. Check the address and that "
                          "this machine can reach the head node (firewall, network)") from None
    except OSError as e:
        raise ConfigError(f"cannot reach {where}: {e.strerror or e}. Check the address and the network") from None
    if len(head) < 9 or head[3] != 4:  # not an HTTP/2 SETTINGS frame: not a Ray port
        raise ConfigError(f"{where} is not a Ray head: something answers on port {port}, but not Ray's GCS (give "
                          "the address 'ray start --head' printed, port 6379 unless the head was started with "
                          "another; not the dashboard's 8265)")


def _exchange(s: socket.socket, message: bytes, n: int) -> bytes:
    """Send `message`, return up to `n` bytes of the answer (fewer when the peer closes or stays silent)."""
    answer = b""
    try:
        s.sendall(message)
        while len(answer) < n:
            chunk = s.recv(n - len(answer))
            if not chunk:
                break
            answer += chunk
    except OSError:  # reset or silent (TimeoutError): either way, not a gRPC server
        pass
    return answer


def _join_cluster(ray, address: str) -> None:
    """ray.init on an existing cluster; every failure is a ConfigError that says what to check."""
    if address != "auto":
        _probe(address)
    try:
        ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    except Exception as e:  # noqa: BLE001 - Ray raises ConnectionError, ValueError, RuntimeError, its own errors
        text = f"{e} {e.__cause__ or ''}"
        if "AuthenticationError" in text or "InvalidAuthToken" in text or "no authentication token" in text:
            raise ConfigError(
                f"the Ray cluster at {address} refused this job: it uses token authentication. Set "
                "RAY_AUTH_MODE=token here (Ray sends no token to an address given explicitly without it) and give "
                "the cluster's token ('ray get-auth-token' on the head prints it) in ~/.ray/auth_token, "
                "RAY_AUTH_TOKEN_PATH or RAY_AUTH_TOKEN") from None
        if address.startswith("ray://") and "ray[client]" in text:
            raise ConfigError("ray:// addresses go through Ray Client, which is not installed: pip install "
                              "'ray[client]' (the same version as the cluster), or run ser batch on a cluster node "
                              "with the address auto") from None
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConfigError(f"cannot join the Ray cluster at {address} ({first}). Check the address (the head node's "
                          f"'ray start --head' prints it), and that this machine runs the cluster's Ray version "
                          f"({ray.__version__} here) and Python version") from None


def run_ray(recordings: Sequence[Recording], make_analyzer: Callable[[], Any], workers: int | None,
            address: str | None = None) -> Iterator[tuple[int, dict[str, Any]]]:
    """Analyse `recordings` with Ray Data; yields (index into recordings, row) as blocks finish.

    address: an existing cluster ('auto', 'ray://head:10001', 'head:6379'); None starts a local Ray
    instance with `workers` CPUs (or joins the one this process already started).
    workers: actors in the pool (default: the CPUs of the local instance or cluster).
    A block whose actor dies (a crash in native code, the out-of-memory killer, a lost node) is not
    retried in place, where a file that kills its worker would be retried forever: the job goes on, and
    the recordings that got no row are run again one per task, one task per actor; one that kills its
    worker then, alone, becomes an error row, as in the local engine.
    Ray is started or joined at once, so that a wrong address fails before any work (ConfigError);
    the rows come as the returned iterator is read, and closing it shuts down a Ray started here.
    """
    ray = _import_ray()
    started_here = False
    if not ray.is_initialized():
        sigterm = signal.getsignal(signal.SIGTERM)
        try:
            if address:
                _join_cluster(ray, address)
            else:
                ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
        finally:  # ray.init makes SIGTERM a bare sys.exit; `kill` should stop the job as the caller set it up to
            if sigterm is not None and threading.current_thread() is threading.main_thread():
                signal.signal(signal.SIGTERM, sigterm)
        started_here = True
    return _stream(ray, recordings, make_analyzer, workers, started_here)


def _stream(ray, recordings: Sequence[Recording], make_analyzer, workers: int | None,
            started_here: bool) -> Iterator[tuple[int, dict[str, Any]]]:
    logging.getLogger("ray.data").setLevel(logging.ERROR)
    ctx = ray.data.DataContext.get_current()
    saved = ctx.enable_progress_bars, ctx.max_errored_blocks
    ctx.enable_progress_bars = False  # the job draws its own bar
    ctx.max_errored_blocks = -1  # a block lost with its actor does not end the job (see above)
    try:
        cpus = int(ray.cluster_resources().get("CPU", 1))
        actors = max(1, min(workers or cpus, cpus, len(recordings)))
        per_call = max(1, min(FILES_PER_CALL, -(-len(recordings) // actors)))  # a short job still uses every actor
        missing = set(range(len(recordings)))
        for i, row in _run_pass(ray, recordings, sorted(missing), make_analyzer, actors, per_call):
            missing.discard(i)
            yield i, row
        if missing:  # one file per task and one task per actor: a crash takes no other file with it
            for i, row in _run_pass(ray, recordings, sorted(missing), make_analyzer, min(actors, len(missing)), 1,
                                    isolate=True):
                missing.discard(i)
                yield i, row
        spec = getattr(make_analyzer, "spec", None)
        for i in sorted(missing):
            yield i, crash_row(recordings[i], spec)
    finally:
        ctx.enable_progress_bars, ctx.max_errored_blocks = saved
        if started_here:
            ray.shutdown()


def _run_pass(ray, recordings: Sequence[Recording], indices: Sequence[int], make_analyzer, actors: int,
              per_call: int, isolate: bool = False) -> Iterator[tuple[int, dict[str, Any]]]:
    import pyarrow as pa

    schema = pa.schema([("i", pa.int64()), ("path", pa.string()), ("source", pa.string()),
                        ("size_bytes", pa.int64()), ("mtime_ns", pa.int64())])
    items = [{"i": i, "path": recordings[i].path, "source": recordings[i].source,
              "size_bytes": recordings[i].size_bytes, "mtime_ns": recordings[i].mtime_ns} for i in indices]
    # Many small blocks, so that the pool spreads them over every actor.
    blocks = [pa.Table.from_pylist(items[k:k + per_call], schema=schema) for k in range(0, len(items), per_call)]
    if not blocks:
        return
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*won't fully utilize.*")  # Ray's hint for short jobs
        # Ray 2.60 takes max_restarts / max_task_retries only as the extra remote arguments it has deprecated
        # (for 2.64) and offers no named parameter yet; the [ray] extra pins 2.60.x.
        warnings.filterwarnings("ignore", message=".*ray_remote_args.* is deprecated.*")
        ds = ray.data.from_arrow(blocks).map_batches(
            _AnalyzerActor, fn_constructor_kwargs={"make_analyzer": make_analyzer},
            batch_size=per_call, batch_format="pyarrow", num_cpus=1,
            compute=ray.data.ActorPoolStrategy(size=actors, max_tasks_in_flight_per_actor=1 if isolate else None),
            max_restarts=-1, max_task_retries=0,  # a dead actor is replaced; its block is not retried in place
        )
        try:
            for table in ds.iter_batches(batch_size=None, batch_format="pyarrow", prefetch_batches=0):
                fatal = next((f for f in table.column("fatal").to_pylist() if f), None)
                if fatal:
                    _raise_fatal(fatal)
                index = table.column("i").to_pylist()
                for i, row in zip(index, table.drop_columns(["i", "fatal"]).to_pylist(), strict=True):
                    yield i, row
        except SERError:
            raise
        except Exception as e:
            first = str(e).strip().splitlines()[-1] if str(e).strip() else ""
            raise BackendError(f"the Ray job failed ({type(e).__name__}: {first}). The rows finished before the "
                               "failure are saved; rerun the same command to continue") from None
