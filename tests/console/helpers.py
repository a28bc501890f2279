"""Reading the console's state from Python: tiles and list rows expose it as data attributes
(the page's CSP forbids evaluating strings, so nothing is injected)."""

from __future__ import annotations

from dataclasses import dataclass, field

from playwright.async_api import ConsoleMessage, Dialog, Error, Page

from tests.fixtures.browser import poll


@dataclass
class PageProblems:
    """Script errors, CSP violations and dialogs seen on a page."""

    errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)

    def watch(self, page: Page) -> None:
        page.on("pageerror", lambda error: self.errors.append(f"page error: {error}"))
        page.on("console", self._console)
        page.on("dialog", self._dialog)

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error" and "Failed to load resource" not in message.text:
            self.errors.append(f"console: {message.text}")

    async def _dialog(self, dialog: Dialog) -> None:
        self.dialogs.append(dialog.message)
        await dialog.dismiss()


def tile(index: int) -> str:
    return f"#wall .tile[data-index='{index}']"


async def attr(page: Page, selector: str, name: str) -> str:
    try:
        return await page.get_attribute(selector, name, timeout=2000) or ""
    except Error:
        return ""


async def frames(page: Page, index: int) -> int:
    return int(await attr(page, tile(index), "data-frames-decoded") or "0")


async def wait_decoding(page: Page, index: int, *, more_than: int = 0,
                        timeout: float = 25.0) -> int:
    """Wait until the tile's video has decoded more than ``more_than`` frames."""

    async def check() -> int | None:
        count = await frames(page, index)
        return count if count > more_than else None

    try:
        return await poll(check, timeout=timeout, interval=0.1,
                          what=f"tile {index + 1} to decode frames")
    except AssertionError:
        state = await attr(page, tile(index), "data-state")
        message = await page.text_content(f"{tile(index)} .tile-message")
        raise AssertionError(f"tile {index + 1} decodes nothing: state {state!r}, "
                             f"message {message!r}") from None


async def wait_state(page: Page, index: int, state: str, *, timeout: float = 20.0) -> None:
    async def check() -> bool:
        return await attr(page, tile(index), "data-state") == state

    await poll(check, timeout=timeout, what=f"tile {index + 1} to be {state}")


async def wall_cameras(page: Page) -> list[str]:
    return [await t.get_attribute("data-camera") or "" for t in
            await page.locator("#wall .tile").all()]


async def pin_at(page: Page, lat: float, lon: float) -> None:
    """Type the incident location and wait for the ranked list of this search (not the list
    an earlier pin left on screen)."""
    before = await page.evaluate("document.body.dataset.resultsAt || ''")
    await page.fill("#coords", f"{lat:.6f}, {lon:.6f}")
    await page.click("#locate button[type=submit]")
    await page.wait_for_function(
        "(before) => (document.body.dataset.resultsAt || '') !== before", arg=before)
    await page.wait_for_selector("#results[data-mode=ranked] li.result")


async def ranked_ids(page: Page) -> list[str]:
    """The ranked list as one snapshot (row by row reads could straddle a re-render)."""
    ids: list[str] = await page.locator("#results li.result").evaluate_all(
        "(rows) => rows.map((row) => row.dataset.cameraId || '')")
    return ids
