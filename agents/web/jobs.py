"""One worker, one queue: every analysis and every chat reply of the web demo runs on a single thread, in
the order asked, so a second upload waits its turn instead of competing for the CPU (or crashing a model
that is not thread-safe). Jobs keep their state for the page to poll: queued (with their place in the
queue), running (with the emotion model's progress), done (with the result) or failed (with the message).
"""

from __future__ import annotations

import itertools
import logging
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal

from ser_tool import SERError, safe_name

__all__ = ["BusyError", "Job", "Worker", "user_message"]

log = logging.getLogger("ser_agent.web")

JobState = Literal["queued", "running", "done", "failed"]


class BusyError(SERError):
    """The queue is full: the request is refused rather than left waiting without end."""


def user_message(error: BaseException) -> str:
    """What the page shows for a failure: an SERError's own message (it says what to do), anything else a
    short line pointing at the server's log, where the traceback goes. Never a traceback in the page."""
    if isinstance(error, SERError):
        return safe_name(error, None)
    log.error("unexpected failure in the web demo", exc_info=error)
    return (f"something went wrong inside the demo ({type(error).__name__}); the details are in the server's log. "
            "Try again, or with another recording")


@dataclass
class Job:
    """One analysis: its state, progress and (once done) result; `data` holds what the app keeps with it."""

    id: str
    name: str
    state: JobState = "queued"
    done: int = 0
    total: int = 0
    error: str | None = None
    result: Any = None
    created: float = field(default_factory=time.monotonic)
    seq: int = 0

    def progress(self, done: int, total: int) -> None:
        self.done, self.total = done, total


class Worker:
    """A single worker thread with a bounded queue, shared by analyses (jobs the page polls) and chat replies
    (calls the request waits for). `max_pending`: most tasks waiting or running; more are refused with
    BusyError. `keep`: finished jobs kept for polling and chat, oldest dropped first."""

    def __init__(self, *, max_pending: int = 8, keep: int = 32) -> None:
        if max_pending < 1 or keep < 1:
            raise ValueError("max_pending and keep must be at least 1")
        self.max_pending, self.keep = max_pending, keep
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ser-web-worker")
        self._lock = threading.Lock()
        self._pending = 0
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._seq = itertools.count()

    @property
    def pending(self) -> int:
        return self._pending

    def _submit(self, fn: Callable[[], Any]) -> Future:
        with self._lock:
            if self._pending >= self.max_pending:
                raise BusyError(f"the demo is busy: {self._pending} requests are already waiting or running. "
                                "Wait for them to finish, then try again")
            self._pending += 1

        def run() -> Any:
            try:
                return fn()
            finally:
                with self._lock:
                    self._pending -= 1

        return self._pool.submit(run)

    def call(self, fn: Callable[[], Any]) -> Future:
        """Run `fn` on the worker after everything queued before it; the future has its result."""
        return self._submit(fn)

    def start_job(self, name: str, work: Callable[[Job], Any]) -> Job:
        """Queue `work(job)`; its return value becomes job.result, an exception job.error (the user's message)."""
        job = Job(id=secrets.token_urlsafe(9), name=name, seq=next(self._seq))

        def run() -> None:
            job.state = "running"
            try:
                job.result = work(job)
                job.state = "done"
            except Exception as e:  # noqa: BLE001 - every failure becomes a message in the page
                job.error = user_message(e)
                job.state = "failed"

        with self._lock:
            self._jobs[job.id] = job
            self._forget_old()
        try:
            self._submit(run)
        except BusyError:
            with self._lock:
                self._jobs.pop(job.id, None)
            raise
        return job

    def job(self, job_id: str) -> Job | None:
        return self._jobs.get(job_id)

    def ahead_of(self, job: Job) -> int:
        """Analyses queued or running before this one (chat replies not counted)."""
        if job.state != "queued":
            return 0
        with self._lock:
            return sum(1 for j in self._jobs.values() if j.seq < job.seq and j.state in ("queued", "running"))

    def _forget_old(self) -> None:
        finished = [j for j in self._jobs.values() if j.state in ("done", "failed")]
        for j in finished[: max(0, len(self._jobs) - self.keep)]:
            del self._jobs[j.id]

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
