"""The STA-024 subscriber against the CAD simulator running as a real subprocess."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiohttp import web

from cadsim.scenario import Scenario
from incidents.backoff import Backoff
from incidents.sta024 import SUBPROTOCOL, JsonObject, Sta024Settings, Sta024Subscriber
from tests.fixtures.cadsim import CadsimFactory, CadsimProcess, wait_for


class Store:
    """The handler: keeps what it was given; fails for tracking ids listed in ``fail``."""

    def __init__(self) -> None:
        self.eidos: list[JsonObject] = []
        self.fail: set[str] = set()

    async def __call__(self, eido: JsonObject) -> None:
        await asyncio.sleep(0)  # a real store awaits its database thread
        if eido.get("incidentTrackingIdentifier") in self.fail:
            raise OSError("the incident store is read-only")
        self.eidos.append(eido)

    def ids(self) -> list[str]:
        return [str(e["incidentTrackingIdentifier"]) for e in self.eidos]


@asynccontextmanager
async def subscribed(url: str, store: Store, **settings: Any) -> AsyncIterator[Sta024Subscriber]:
    subscriber = Sta024Subscriber(
        Sta024Settings(url, **settings), store,
        backoff=Backoff(initial=0.05, cap=0.5))
    async with subscriber:
        async def ready() -> bool:
            return bool(subscriber.state().subscriptions)

        await wait_for(ready, "the subscriber to subscribe")
        yield subscriber


async def _responses(sim: CadsimProcess) -> dict[str, int]:
    stats = await sim.stats()
    return {code: int(n) for code, n in stats["responses"].items()}


async def test_events_are_stored_then_answered(cadsim_factory: CadsimFactory) -> None:
    sim = await cadsim_factory()
    store = Store()
    scenario = Scenario(seed=7)
    first, second = scenario.next_eido(), scenario.next_eido()
    async with subscribed(sim.ws_url, store) as subscriber:
        await sim.inject(first)
        await sim.inject(second)

        async def answered() -> bool:
            return (await _responses(sim)).get("200") == 2

        await wait_for(answered, "two eventResponses with 200")
        assert store.eidos == [first, second]
        state = subscriber.state()
        assert state.connected
        assert state.events == 2
        assert state.failed_events == 0
        assert state.last_event_at is not None
        stats = await sim.stats()
        assert stats["unanswered"] == 0
        assert [s["subscriptionId"] for s in stats["subscriptions"]] == list(state.subscriptions)


async def test_a_handler_failure_is_answered_with_an_error_and_the_connection_kept(
        cadsim_factory: CadsimFactory, caplog: pytest.LogCaptureFixture) -> None:
    sim = await cadsim_factory()
    store = Store()
    bad = Scenario(seed=8).next_eido()
    store.fail.add(bad["incidentTrackingIdentifier"])
    async with subscribed(sim.ws_url, store) as subscriber:
        with caplog.at_level(logging.ERROR, logger="incidents.sta024"):
            await sim.inject(bad)

            async def refused() -> bool:
                return (await _responses(sim)).get("500") == 1

            await wait_for(refused, "an eventResponse with 500")
        assert any("was not stored" in r.getMessage() and r.exc_info for r in caplog.records)
        good = Scenario(seed=80).next_eido()  # another incident
        await sim.inject(good)

        async def stored() -> bool:
            return (await _responses(sim)).get("200") == 1

        await wait_for(stored, "the next event answered with 200")
        assert store.eidos == [good]
        state = subscriber.state()
        assert (state.failed_events, state.events, state.connects) == (1, 1, 1)


async def test_a_short_subscription_is_renewed_and_keeps_receiving(
        cadsim_factory: CadsimFactory) -> None:
    sim = await cadsim_factory("--rate", "0", "--max-expires", "1")
    store = Store()
    async with subscribed(sim.ws_url, store, expires=60) as subscriber:
        async def renewed() -> bool:
            return subscriber.state().renewals >= 3

        await wait_for(renewed, "three renewals of a 1 s subscription")
        eido = Scenario(seed=9).next_eido()
        sent = await sim.inject(eido)
        assert sent["sent"] == 1  # the subscription is still live at the notifier

        async def received() -> bool:
            return store.eidos == [eido]

        await wait_for(received, "the EIDO sent after the renewals")
        stats = await sim.stats()
        assert stats["expired"] == 0
        assert subscriber.state().connects == 1


async def test_reconnects_after_the_notifier_restarts(cadsim_factory: CadsimFactory) -> None:
    sim = await cadsim_factory()
    store = Store()
    scenario = Scenario(seed=10)
    async with subscribed(sim.ws_url, store) as subscriber:
        await sim.stop()

        async def lost() -> bool:
            state = subscriber.state()
            return not state.connected and state.last_error is not None

        await wait_for(lost, "the subscriber to notice the notifier is gone")
        await sim.start()  # same port

        async def back() -> bool:
            state = subscriber.state()
            return state.connects == 2 and bool(state.subscriptions)

        await wait_for(back, "the subscriber to reconnect and subscribe again")
        eido = scenario.next_eido()
        await sim.inject(eido)

        async def received() -> bool:
            return store.eidos == [eido]

        await wait_for(received, "an EIDO after the reconnection")


async def test_subscribes_to_listed_incidents_only(cadsim_factory: CadsimFactory) -> None:
    sim = await cadsim_factory()
    scenario = Scenario(seed=11)
    wanted, other = scenario.next_eido(), scenario.next_eido()
    while other["incidentTrackingIdentifier"] == wanted["incidentTrackingIdentifier"]:
        other = scenario.next_eido()
    await sim.inject([wanted, other])  # the notifier knows both before the subscription
    store = Store()
    async with subscribed(sim.ws_url, store,
                          incident_ids=(wanted["incidentTrackingIdentifier"],)):
        async def current_state() -> bool:
            return store.ids() == [wanted["incidentTrackingIdentifier"]]

        await wait_for(current_state, "the subscribed incident's current EIDO")
        await sim.inject(other)
        update = dict(wanted, lastUpdateTimeStamp="2030-01-01T00:00:00.000+00:00")
        await sim.inject(update)

        async def updated() -> bool:
            return len(store.eidos) == 2

        await wait_for(updated, "the update of the subscribed incident")
        assert store.ids() == [wanted["incidentTrackingIdentifier"]] * 2
        assert store.eidos[1] == update


async def test_malformed_messages_are_logged_and_the_connection_kept(
        caplog: pytest.LogCaptureFixture) -> None:
    # A notifier that misbehaves on purpose: the simulator only sends well-formed messages.
    answers: list[JsonObject] = []

    async def notifier(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(protocols=(SUBPROTOCOL,))
        await ws.prepare(request)
        async for msg in ws:
            message = json.loads(msg.data)
            if "subscribe" in message:
                request_id = message["subscribe"]["requestId"]
                await ws.send_json({"subscribeResponse": {
                    "requestId": request_id, "subscriptionId": "s1", "expires": 60,
                    "statusCode": 200, "statusText": "OK"}})
                await ws.send_str("{not json")
                await ws.send_json(["an", "array"])
                await ws.send_json({"event": {"subscriptionId": "s1"}})
                await ws.send_json({"event": {"subscriptionId": "s1", "transactionId": "t1",
                                              "notification": "not a list"}})
                await ws.send_json({"event": {"subscriptionId": "s1", "transactionId": "t2",
                                              "notification": [{"$id": "x"}]}})
            elif "eventResponse" in message:
                answers.append(message["eventResponse"])
        return ws

    app = web.Application()
    app.router.add_get("/ent", notifier)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    store = Store()
    try:
        with caplog.at_level(logging.WARNING, logger="incidents.sta024"):
            async with subscribed(f"ws://127.0.0.1:{port}/ent", store) as subscriber:
                async def both_answered() -> bool:
                    return len(answers) == 2

                await wait_for(both_answered, "answers to the two events with a transactionId")
                assert subscriber.state().connects == 1
        assert [(a["transactionId"], a["statusCode"]) for a in answers] == [("t1", 400),
                                                                             ("t2", 200)]
        assert store.eidos == [{"$id": "x"}]
        text = "\n".join(r.getMessage() for r in caplog.records)
        assert "not JSON" in text
        assert "exactly one key" in text
        assert "without a transactionId" in text
        assert "must be a list of EIDO objects" in text
    finally:
        await runner.cleanup()


async def test_cancel_stops_the_subscriber(cadsim_factory: CadsimFactory) -> None:
    sim = await cadsim_factory()
    subscriber = Sta024Subscriber(Sta024Settings(sim.ws_url), Store())
    task = asyncio.create_task(subscriber.run())

    async def subscribed_once() -> bool:
        return bool(subscriber.state().subscriptions)

    await wait_for(subscribed_once, "the subscription")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    async def gone() -> bool:
        return not (await sim.stats())["subscriptions"]

    await wait_for(gone, "the notifier to see the subscriber leave")
    assert not subscriber.state().connected


def test_settings_refuse_a_non_websocket_url() -> None:
    with pytest.raises(ValueError, match="ws:// or wss://"):
        Sta024Settings("http://127.0.0.1:1/ent")


async def test_a_message_over_the_limit_closes_the_connection_and_says_why(
        cadsim_factory: CadsimFactory) -> None:
    sim = await cadsim_factory()
    store = Store()
    async with subscribed(sim.ws_url, store, max_message_bytes=16 * 1024) as subscriber:
        huge = Scenario(seed=13).next_eido()
        huge["padding"] = "x" * 32 * 1024
        await sim.inject(huge)

        async def refused() -> bool:
            return "over the limit of 16384 bytes" in (subscriber.state().last_error or "")

        await wait_for(refused, "the subscriber to report the oversized message")
        assert store.eidos == []
