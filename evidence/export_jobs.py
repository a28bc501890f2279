"""Exports started from the investigator's screen: built in the background, one camera after
the other, with their progress kept for the page to follow (server-sent events).

A job's progress lives in memory; its state and results are kept in the evidence store (table
``export_jobs``), written when it starts, after each camera and when it ends, so a job outlives
the server. A server stopped mid-export (killed, power lost) finds the job still ``running`` at
its next start and marks it ``failed`` with ``INTERRUPTED``; a package it was writing is never
offered (``evidence.exports.sweep_interrupted`` removes it). Download tokens are shown once and
never stored: a job read back from the store names its packages by export id, without links.
In memory, jobs are forgotten an hour after they end; in the store they are kept
``KEEP_STORED_DAYS``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from evidence.store import AsyncEvidenceStore, EvidenceStore
from rtcc.db import Row
from rtcc.errors import StoreUnavailable
from rtcc.tasks import TaskSupervisor

log = logging.getLogger(__name__)

KEEP_SECONDS = 3600.0
KEEP_STORED_DAYS = 30
MAX_JOBS = 200
INTERRUPTED = "the server stopped during the export; start it again"
SECRET_RESULT_FIELDS = frozenset({"id", "download"})
"""A result's download token and link: shown to the requester once, never stored."""


@dataclass
class ExportJob:
    id: str
    user_id: int
    case: str
    cameras: tuple[str, ...]
    state: str = "running"
    """``running``, ``done`` (every camera exported), ``partly_done`` or ``failed``."""
    camera: str = ""
    stage: str = "queued"
    fraction: float = 0.0
    """Of the whole job, 0..1."""
    results: list[dict[str, Any]] = field(default_factory=list)
    version: int = 0
    ended: float | None = None
    error: str = ""
    """Why the job failed as a whole (``INTERRUPTED``); a camera's failure is in its result."""
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    def as_json(self) -> dict[str, Any]:
        found = {"id": self.id, "case": self.case, "cameras": list(self.cameras),
                 "state": self.state, "camera": self.camera, "stage": self.stage,
                 "progress": round(self.fraction, 4), "results": self.results,
                 "version": self.version}
        if self.error:
            found["error"] = self.error
        return found

    def _notify(self) -> None:
        self.version += 1
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def progress(self, camera: str, stage: str, fraction_of_camera: float) -> None:
        index = self.cameras.index(camera) if camera in self.cameras else 0
        self.camera, self.stage = camera, stage
        self.fraction = min(1.0, (index + max(0.0, min(1.0, fraction_of_camera)))
                            / max(1, len(self.cameras)))
        self._notify()

    def add_result(self, result: dict[str, Any]) -> None:
        self.results.append(result)
        self._notify()

    def finish(self, error: str = "") -> None:
        """End the job: by its results, or ``failed`` with ``error`` when it was cut short."""
        good = sum(1 for result in self.results if "export_id" in result)
        self.error = error
        self.state = ("failed" if error or not good
                      else "done" if good == len(self.results) else "partly_done")
        self.stage, self.fraction, self.ended = "finished", 1.0, time.time()
        self._notify()

    async def changed_since(self, version: int, wait_seconds: float) -> None:
        """Return when the job's version passes ``version`` or after ``wait_seconds``."""
        if self.version > version:
            return
        try:
            async with asyncio.timeout(wait_seconds):
                await self._changed.wait()
        except TimeoutError:
            return

    @classmethod
    def from_row(cls, row: Row) -> ExportJob:
        state = str(row["state"])
        return cls(id=row["id"], user_id=int(row["user_id"]), case=row["case_number"],
                   cameras=tuple(json.loads(row["cameras"])), state=state,
                   stage="finished" if state != "running" else "in progress on another node",
                   fraction=1.0 if state != "running" else 0.0,
                   results=list(json.loads(row["results"])),
                   ended=None if row["ended"] is None else float(row["ended"]),
                   error=row["error"])


# -- the table (run on the evidence store's thread) -------------------------------------------

def _stored_results(job: ExportJob) -> str:
    return json.dumps([{k: v for k, v in result.items() if k not in SECRET_RESULT_FIELDS}
                       for result in job.results])


def insert_job(store: EvidenceStore, job: ExportJob, node: str, now: float) -> None:
    store.execute(
        "INSERT INTO export_jobs (id, user_id, case_number, cameras, node, state, results,"
        " error, created, ended) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, NULL)",
        (job.id, job.user_id, job.case, json.dumps(list(job.cameras)), node, job.state,
         _stored_results(job), job.error, now))


def update_job(store: EvidenceStore, job: ExportJob) -> None:
    store.execute("UPDATE export_jobs SET state = ?, results = ?, error = ?, ended = ?"
                  " WHERE id = ?",
                  (job.state, _stored_results(job), job.error, job.ended, job.id))


def load_job(store: EvidenceStore, job_id: str) -> ExportJob | None:
    row = store.fetchone("SELECT * FROM export_jobs WHERE id = ?", (job_id,))
    return None if row is None else ExportJob.from_row(row)


def fail_interrupted(store: EvidenceStore, node: str, now: float) -> int:
    """At start: this node's jobs still ``running`` were cut short by the stop; mark them
    failed (``INTERRUPTED``), and forget jobs ended more than ``KEEP_STORED_DAYS`` ago.
    Returns how many were marked."""
    with store.transaction():
        marked = store.execute(
            "UPDATE export_jobs SET state = 'failed', error = ?, ended = ?"
            " WHERE node = ? AND state = 'running'", (INTERRUPTED, now, node)).rowcount
        store.execute("DELETE FROM export_jobs WHERE ended < ?",
                      (now - KEEP_STORED_DAYS * 86400.0,))
    return int(marked)


# -- the jobs of this server ------------------------------------------------------------------

class ExportJobs:
    """The running and recent jobs of the server, kept in ``store`` under this ``node``."""

    def __init__(self, store: AsyncEvidenceStore, node: str) -> None:
        self._store = store
        self._node = node
        self._jobs: dict[str, ExportJob] = {}
        self._tasks = TaskSupervisor("export-jobs")

    async def recover(self) -> int:
        """Mark the jobs a previous run of this node left running as failed; at start."""
        return await self._store.call(fail_interrupted, self._node, time.time())

    async def get(self, job_id: str) -> ExportJob | None:
        """The job: this run's from memory, an earlier one's (or another node's) from the
        store."""
        found = self._jobs.get(job_id)
        if found is not None or not job_id.startswith("job-"):
            return found
        return await self._store.call(load_job, job_id)

    async def submit(self, user_id: int, case: str, cameras: tuple[str, ...],
                     work: Callable[[ExportJob], Awaitable[None]]) -> ExportJob:
        """Start a job; raises RuntimeError when too many run, ``StoreUnavailable`` when it
        cannot be recorded (then it is not started)."""
        self._forget_old()
        if sum(1 for job in self._jobs.values() if job.state == "running") >= MAX_JOBS:
            raise RuntimeError("too many exports are being built; try again when one ends")
        job = ExportJob(f"job-{secrets.token_hex(8)}", user_id, case, cameras)
        await self._store.call(insert_job, job, self._node, time.time())
        self._jobs[job.id] = job

        async def run() -> None:
            cut_short = INTERRUPTED
            try:
                await work(job)
                cut_short = ""
            finally:
                job.finish(cut_short)
                await self.save(job)

        self._tasks.spawn(f"export-job:{job.id}", run())
        return job

    async def save(self, job: ExportJob) -> None:
        """Record the job's state and results. A store that does not answer costs only the
        record (the job goes on, followed in memory): it is logged."""
        try:
            await self._store.call(update_job, job)
        except StoreUnavailable as exc:
            log.warning("export job %s (case %s): its state could not be recorded: %s",
                        job.id, job.case, exc)

    def _forget_old(self) -> None:
        limit = time.time() - KEEP_SECONDS
        for job_id in [job.id for job in self._jobs.values()
                       if job.ended is not None and job.ended < limit]:
            del self._jobs[job_id]

    async def aclose(self) -> None:
        await self._tasks.aclose()
