"""Exports started from the investigator's screen: built in the background, one camera after
the other, with their progress kept for the page to follow (server-sent events).

A job lives in memory (its packages and their download tokens are in the evidence store as any
export's); jobs are forgotten an hour after they end, and a server restart forgets them all.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from rtcc.tasks import TaskSupervisor

KEEP_SECONDS = 3600.0
MAX_JOBS = 200


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
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "case": self.case, "cameras": list(self.cameras),
                "state": self.state, "camera": self.camera, "stage": self.stage,
                "progress": round(self.fraction, 4), "results": self.results,
                "version": self.version}

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

    def finish(self) -> None:
        good = sum(1 for result in self.results if "download" in result)
        self.state = ("done" if good == len(self.results)
                      else "partly_done" if good else "failed")
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


class ExportJobs:
    """The running and recent jobs of the server."""

    def __init__(self) -> None:
        self._jobs: dict[str, ExportJob] = {}
        self._tasks = TaskSupervisor("export-jobs")

    def get(self, job_id: str) -> ExportJob | None:
        return self._jobs.get(job_id)

    def submit(self, user_id: int, case: str, cameras: tuple[str, ...],
               work: Callable[[ExportJob], Awaitable[None]]) -> ExportJob:
        self._forget_old()
        if sum(1 for job in self._jobs.values() if job.state == "running") >= MAX_JOBS:
            raise RuntimeError("too many exports are being built; try again when one ends")
        job = ExportJob(f"job-{secrets.token_hex(8)}", user_id, case, cameras)
        self._jobs[job.id] = job

        async def run() -> None:
            try:
                await work(job)
            finally:
                job.finish()

        self._tasks.spawn(f"export-job:{job.id}", run())
        return job

    def _forget_old(self) -> None:
        limit = time.time() - KEEP_SECONDS
        for job_id in [job.id for job in self._jobs.values()
                       if job.ended is not None and job.ended < limit]:
            del self._jobs[job_id]

    async def aclose(self) -> None:
        await self._tasks.aclose()
