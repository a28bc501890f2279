"""The console's WHEP client in headless Chromium, limited to relay candidates, decodes a camera
through a real coturn: the TURN server and its minted credentials come from the WHEP ``Link``
headers of the real application."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from playwright.async_api import Browser
from pydantic import SecretStr

from rtcc.config import HubConfig, RelayConfig, SecurityConfig, Settings
from rtcc.policy import Role
from server.app import create_app
from tests.console.conftest import camera, pair
from tests.fixtures.auth import MakeClient, bearer, create_user
from tests.fixtures.browser import login_form, poll
from tests.fixtures.camsim import CamsimFactory
from tests.fixtures.coturn import RELAY_ONLY, TURN_SECRET, Coturn

OPEN_VIEW = """async () => {
  const whep = await import("/console/static/console/whep.js");
  const view = await whep.openView("alpha", "sub", { purpose: "turn test" });
  window.rtccView = view;
  const video = document.createElement("video");
  video.muted = true;
  video.srcObject = await view.stream;
  document.body.appendChild(video);
  await video.play();
  return view.location;
}"""

VIEW_STATS = """async () => {
  const report = await window.rtccView.pc.getStats();
  const byId = new Map();
  report.forEach((s) => byId.set(s.id, s));
  let decoded = 0;
  let local = null;
  report.forEach((s) => {
    if (s.type === "inbound-rtp" && s.kind === "video") decoded = s.framesDecoded || 0;
    if (s.type === "transport" && s.selectedCandidatePairId) {
      const pair = byId.get(s.selectedCandidatePairId);
      local = pair && byId.get(pair.localCandidateId);
    }
  });
  return { decoded, localType: local ? local.candidateType : null };
}"""


async def test_console_viewer_decodes_through_coturn_with_minted_credentials(
    tmp_path: Path, camsim_factory: CamsimFactory, bootstrap_token: str,
    make_client: MakeClient, chromium: Browser, coturn: Coturn,
) -> None:
    sim = await camsim_factory(pair("alpha"))
    settings = Settings(
        data_dir=tmp_path / "data",
        security=SecurityConfig(allow_private_camera_hosts=["127.0.0.0/8"]),
        hub=HubConfig(close_after=2.0, start_timeout=8.0),
        cameras=[camera("alpha", "Alpha Ave & 1st", 0, 0, 0, sim)],
        relay=RelayConfig(ice_servers=[coturn.url], turn_secret=SecretStr(TURN_SECRET),
                          host_addresses=["127.0.0.1"]),
    )
    client = await make_client(create_app(settings))
    base = str(client.make_url("")).rstrip("/")
    analyst = await create_user(client, bearer(bootstrap_token), Role.ANALYST,
                                username="analyst9", display_name="Analyst Nine")
    context = await chromium.new_context()
    await context.add_init_script(RELAY_ONLY)
    page = await context.new_page()
    page.set_default_timeout(20_000)
    try:
        await login_form(page, base, analyst.username, analyst.password, analyst.next_code())
        await page.wait_for_selector("body[data-ready=true]")
        location = await page.evaluate(OPEN_VIEW)
        assert location.startswith("/whep/alpha/")

        # Every connection the page built (the view's and the wall's standby ones) has the
        # TURN server and a credential minted for this analyst.
        configs: list[dict[str, Any]] = await page.evaluate("window.rtccIceConfigs")
        servers = [s for c in configs for s in c.get("iceServers", [])]
        assert len(servers) == len(configs) >= 1
        for server in servers:
            assert server["urls"] == coturn.url
            assert server["username"].endswith(":analyst9")
            assert server["credential"]

        async def relayed_frames() -> dict[str, Any] | None:
            stats: dict[str, Any] = await page.evaluate(VIEW_STATS)
            return stats if stats["decoded"] >= 15 else None

        stats = await poll(relayed_frames, timeout=30, what="15 frames decoded through TURN")
        assert stats["localType"] == "relay"
        log = coturn.log()
        assert any(f"user <{server['username']}>: incoming packet ALLOCATE processed, success"
                   in log for server in servers), log[-3000:]
    finally:
        await context.close()
