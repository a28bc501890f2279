"""Honest refusals under stress: admission control on event-loop lag, 503 for a store outage.

* ``loop_lag_context`` samples the event loop's lag continuously (``rtcc.looplag``); ``/metrics``
  reports it. Beside it, freed heap memory goes back to the system every few minutes
  (``rtcc.heap``), so a server returns near its idle size after a busy hour.
* ``admission_middleware``: while the lag has stayed above ``overload.lag_threshold``, requests
  that start new work (a view, a WHIP publication, an export, an upload) get 503 with
  ``Retry-After``; everything else, and the views already open, carry on.
* ``store_errors_middleware``: a store that does not answer (``StoreUnavailable``, which
  ``DatabaseUnavailable`` is) is a 503 with the reason and ``Retry-After`` from any route,
  never a 500; a 503 a route answers by itself gets ``Retry-After`` too.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web

from rtcc import heap
from rtcc.appkeys import SETTINGS
from rtcc.errors import StoreUnavailable
from rtcc.looplag import LoopLag
from rtcc.tasks import TaskSupervisor

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

LOOP_LAG = web.AppKey("loop_lag", LoopLag)

STORE_RETRY_AFTER = 5
"""Seconds a client is asked to wait after a store did not answer (its pool reconnects)."""

NEW_WORK: frozenset[tuple[str, str]] = frozenset({
    ("POST", "/whep/{camera_id}"),
    ("POST", "/whip/{camera_id}"),
    ("POST", "/api/exports"),
    ("POST", "/api/investigate/exports"),
    ("POST", "/api/footage-requests/{request_id}/uploads"),
    ("POST", "/tips/api/uploads"),
    ("PUT", "/tips/api/uploads/{media_id}"),
})
"""Routes (method, canonical path) that start work the server must keep doing once accepted."""


def _retry_json(status: int, message: str, retry_after: int) -> web.Response:
    return web.json_response({"error": message, "retry_after": retry_after}, status=status,
                             headers={"Retry-After": str(retry_after)})


def _with_retry_after(response: web.StreamResponse) -> None:
    if (response.status == 503 and "Retry-After" not in response.headers
            and not response.prepared):
        response.headers["Retry-After"] = str(STORE_RETRY_AFTER)


@web.middleware
async def store_errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except StoreUnavailable as exc:
        log.warning("%s %s: a store did not answer: %s", request.method, request.path, exc)
        return _retry_json(503, f"{exc} (the server keeps trying; try again shortly)",
                           STORE_RETRY_AFTER)
    except web.HTTPException as exc:
        _with_retry_after(exc)
        raise
    _with_retry_after(response)
    return response


@web.middleware
async def admission_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    lag = request.config_dict.get(LOOP_LAG)
    if lag is not None and lag.overloaded():
        route = request.match_info.route.resource
        if route is not None and (request.method, route.canonical) in NEW_WORK:
            lag.refused += 1
            return _retry_json(
                503, f"the server is overloaded (its event loop runs {lag.last:.2f} s late); "
                "views already open continue, try again shortly", lag.retry_after())
    return await handler(request)


async def loop_lag_context(app: web.Application) -> AsyncIterator[None]:
    config = app[SETTINGS].overload
    lag = LoopLag(interval=config.sample_interval, window=config.window,
                  threshold=config.lag_threshold, sustain=config.sustain)
    app[LOOP_LAG] = lag
    async with TaskSupervisor("loop-lag") as tasks:
        tasks.start("loop-lag:sample", lag.run)
        tasks.start("heap:release", heap.release_periodically)
        yield


__all__ = ["LOOP_LAG", "NEW_WORK", "admission_middleware", "loop_lag_context",
           "store_errors_middleware"]
