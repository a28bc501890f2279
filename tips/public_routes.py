"""The public tip line's API, under ``/tips/api/``: no login, and no caller ever known.

Every handler is ``rtcc.policy.anonymous``: the security middleware reads no cookie or token
for it and logs no address. The caller's address is used only as the input of an in-memory
keyed rate bucket (``tips.ratelimit``). The tip number and passphrase travel in JSON bodies,
never in a URL. Whatever a tipster sends is stored (and flushed to disk) before the answer
says it arrived.

``POST /tips/api/tips``              a new tip; answers its number and passphrase (shown once)
``POST /tips/api/uploads``           start a file upload for a tip (number, passphrase, size)
``GET  /tips/api/uploads/{id}``      how many bytes of the upload the server holds
``PUT  /tips/api/uploads/{id}?offset=N``  the next chunk; refused with the held offset if not
``POST /tips/api/follow-up``         the tip's replies and files (number, passphrase)
``POST /tips/api/messages``          add a message to the tip (number, passphrase, body)
``POST /tips/send``                  the tip page's form without JavaScript (text only): answers
                                     a page with the number and passphrase
"""

from __future__ import annotations

import html
from typing import Any

from aiohttp import web

from rtcc.http import JsonError, error, read_body, read_json
from rtcc.policy import anonymous
from rtcc.principal import client_address
from tips.checks import TextRefused, message_text, tip_text
from tips.keys import TIP_LINE
from tips.media import SNIFF_BYTES, MediaRefused, size_limit, sniff
from tips.service import TipLine, new_passphrase
from tips.store import Media, OffsetMismatch, Tip, UploadClosed
from tips.vault import new_key

WRONG_CREDENTIALS = "the tip number or passphrase is wrong; check both and try again"


def _line(request: web.Request) -> TipLine:
    line = request.config_dict.get(TIP_LINE)
    if line is None:
        raise error(503, "the tip line is not running; try again in a few minutes")
    return line


def _flood(line: TipLine, what: str) -> web.HTTPError:
    wait = line.buckets.seconds_left()
    return error(429, f"too many {what} from this connection; wait {wait // 60 + 1} minutes "
                 "and try again (your earlier sends are safe)", retry_after=wait)


def _take(request: web.Request, line: TipLine, action: str, limit: int, what: str,
          cost: int = 1) -> None:
    if not line.buckets.take(action, client_address(request), limit, cost):
        raise _flood(line, what)


def _refused(exc: TextRefused) -> web.HTTPError:
    return error(400, str(exc), field=exc.field)


async def _tip_for(request: web.Request, line: TipLine, fields: dict[str, Any]) -> Tip:
    number = fields.get("number")
    passphrase = fields.get("passphrase")
    if not isinstance(number, str) or not isinstance(passphrase, str) or not number \
            or not passphrase or len(number) > 40 or len(passphrase) > 100:
        raise error(400, "send the tip number and the passphrase you were given")
    _take(request, line, "passphrase", line.floods.passphrase_tries, "passphrase attempts")
    # Per tip too, so guessing one tip's passphrase from many connections stays slow.
    if not line.buckets.take("passphrase-tip", number.strip().upper(),
                             line.floods.tries_per_tip):
        raise _flood(line, "passphrase attempts for this tip")
    tip = await line.store.tip_by_number(number)
    if tip is None or not await line.check_passphrase(tip, passphrase.strip().lower()):
        raise error(403, WRONG_CREDENTIALS)
    return tip


def media_json(media: Media) -> dict[str, Any]:
    return {"id": media.id, "state": media.status, "kind": media.kind, "size":
            media.declared_size, "received": media.received, "note": media.note}


async def _create_tip(request: web.Request, line: TipLine, fields: dict[str, Any]
                      ) -> tuple[Tip, str]:
    """The new tip and its passphrase; raises ``TextRefused`` or a 429."""
    text = tip_text(fields)
    line.repeats.check(text.what)
    _take(request, line, "tip", line.floods.tips, "tips")
    passphrase = new_passphrase()
    tip = await line.store.create_tip(
        created=line.now_minute(), what=text.what, place=text.where, lat=text.lat,
        lon=text.lon, happened=text.when, contact_sealed=line.seal_contact(text.contact),
        passphrase_hash=await line.hash_passphrase(passphrase))
    return tip, passphrase


@anonymous()
async def submit_tip(request: web.Request) -> web.Response:
    line = _line(request)
    try:
        tip, passphrase = await _create_tip(request, line, await read_json(request))
    except TextRefused as exc:
        raise _refused(exc) from None
    return web.json_response({"number": tip.number, "passphrase": passphrase,
                              "chunk_bytes": line.limits.chunk_bytes}, status=201)


_FORM_FIELDS = ("what", "where", "when", "contact")
"""What the form sends without JavaScript (no map point: the pin needs the script)."""


def _page(status: int, title: str, *paragraphs: str) -> web.Response:
    body = "".join(f"<p>{html.escape(text)}</p>" for text in paragraphs)
    return web.Response(status=status, content_type="text/html", charset="utf-8",
                        headers={"Cache-Control": "no-store"}, text=(
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<title>{html.escape(title)}</title>'
        '<link rel="stylesheet" href="/tips/static/tip.css"></head><body><main>'
        f'<h1>{html.escape(title)}</h1>{body}<p><a href="/tips/">Back to the tip page</a></p>'
        "</main></body></html>"))


@anonymous()
async def submit_tip_form(request: web.Request) -> web.Response:
    """The tip page's form posted by a browser without JavaScript: the text only."""
    line = _line(request)
    form = await request.post()
    fields = {name: value for name in _FORM_FIELDS
              if isinstance(value := form.get(name), str)}
    try:
        tip, passphrase = await _create_tip(request, line, fields)
    except TextRefused as exc:
        return _page(400, "Your tip was not sent", f"{exc}.", "Go back and change it.")
    except JsonError as exc:
        return _page(exc.status_code, "Your tip was not sent", exc.message)
    return _page(201, "Your tip was sent",
                 f"Tip number: {tip.number}", f"Passphrase: {passphrase}",
                 "Write both down now: they are shown only once. With them you can come back "
                 "to this page to read replies and write more.",
                 "Photos and videos can be added later from the tip page in a browser that runs "
                 "its script.")


@anonymous()
async def start_upload(request: web.Request) -> web.Response:
    line = _line(request)
    fields = await read_json(request)
    size = fields.get("size")
    most = max(line.limits.image_bytes, line.limits.video_bytes)
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        raise error(400, "send the file's size in bytes")
    if size > most:
        raise error(413, f"the file is {size // 1024**2} MiB; the most the tip line takes is "
                    f"{most // 1024**2} MiB (photos {line.limits.image_bytes // 1024**2} MiB)",
                    limit=most)
    tip = await _tip_for(request, line, fields)
    _take(request, line, "upload", line.floods.uploads, "uploads")
    if await line.store.free_bytes() < size + line.limits.min_free_bytes:
        raise error(507, "the tip line is short of storage space right now; your tip is "
                    "saved: add the file later with your tip number and passphrase")
    _, wrapped = new_key(line.box)
    media = await line.store.create_media(tip.id, line.now_minute(), size, wrapped,
                                          line.limits.files_per_tip)
    if media is None:
        raise error(409, f"this tip already has {line.limits.files_per_tip} files, the most "
                    "one tip takes")
    return web.json_response({"upload": media_json(media),
                              "chunk_bytes": line.limits.chunk_bytes}, status=201)


async def _upload(line: TipLine, request: web.Request) -> Media:
    media = await line.store.media(request.match_info["media_id"])
    if media is None:
        raise error(404, "no such upload; start the file again")
    return media


@anonymous()
async def upload_state(request: web.Request) -> web.Response:
    line = _line(request)
    media = await _upload(line, request)
    if media.status == "receiving" and media.received >= media.declared_size:
        media = await line.finish(media)  # the last chunk arrived but its answer was lost
    return web.json_response(media_json(media))


@anonymous()
async def put_chunk(request: web.Request) -> web.Response:
    line = _line(request)
    media = await _upload(line, request)
    try:
        offset = int(request.query.get("offset", ""))
    except ValueError:
        raise error(400, "say where the chunk starts: ?offset=N") from None
    if media.status != "receiving":
        raise error(409, f"this upload is {media.status} and takes no more bytes",
                    **media_json(media))
    if offset != media.received:
        raise error(409, f"the server holds {media.received} bytes of this file; send from "
                    "there", **media_json(media))
    # Counted before reading, so a caller over its budget is stopped before sending more.
    _take(request, line, "upload-bytes", line.floods.upload_bytes, "uploaded bytes",
          cost=min(request.content_length or line.limits.chunk_bytes, line.limits.chunk_bytes))
    try:
        data = await read_body(request, line.limits.chunk_bytes)
    except ConnectionError:
        # The phone lost its connection mid-chunk: nothing of it is kept, and the page asks
        # where the upload stands when it is back. Not a server failure.
        raise error(400, "the chunk was cut off; send it again from the offset the server "
                    "holds", received=media.received) from None
    if not data:
        raise error(400, "the chunk is empty")
    if offset + len(data) > media.declared_size:
        raise error(400, f"the chunk goes past the file's size ({media.declared_size} bytes)")
    kind, label = media.kind, media.label
    if offset == 0:
        if len(data) < min(SNIFF_BYTES, media.declared_size):
            raise error(400, f"the first chunk must hold at least {SNIFF_BYTES} bytes")
        try:
            sniffed = sniff(data[:SNIFF_BYTES])
        except MediaRefused as exc:
            await line.store.finish_media(media.id, status="refused", note=str(exc))
            raise error(415, str(exc)) from None
        limit = size_limit(sniffed.kind, line.limits)
        if media.declared_size > limit:
            message = (f"this {sniffed.kind} is {media.declared_size // 1024**2} MiB; the most "
                       f"the tip line takes is {limit // 1024**2} MiB")
            await line.store.finish_media(media.id, status="refused", note=message)
            raise error(413, message, limit=limit)
        kind, label = sniffed.kind, sniffed.label
    try:
        media = await line.store.append_chunk(media.id, offset, data, line.file_key(media),
                                              kind, label)
    except OffsetMismatch as exc:
        raise error(409, str(exc), received=exc.received) from None
    except UploadClosed as exc:
        raise error(409, str(exc), state=exc.status) from None
    if media.received >= media.declared_size:
        media = await line.finish(media)
        if media.status == "refused":
            raise error(422, media.note, **media_json(media))
    return web.json_response(media_json(media))


@anonymous()
async def follow_up(request: web.Request) -> web.Response:
    line = _line(request)
    tip = await _tip_for(request, line, await read_json(request))
    messages = await line.store.messages(tip.id)
    media = await line.store.media_of(tip.id)
    return web.json_response({
        "number": tip.number,
        "status": "received" if tip.status in {"new", "in_review", "linked"} else "closed",
        "messages": [{"from": "you" if m.author == "tipster" else "investigator",
                      "at": m.created, "body": m.body} for m in messages],
        "files": [media_json(m) for m in media],
        "chunk_bytes": line.limits.chunk_bytes,
    })


@anonymous()
async def tipster_message(request: web.Request) -> web.Response:
    line = _line(request)
    fields = await read_json(request)
    try:
        body = message_text(fields)
    except TextRefused as exc:
        raise _refused(exc) from None
    tip = await _tip_for(request, line, fields)
    _take(request, line, "message", line.floods.messages, "messages")
    message = await line.store.add_message(tip.id, line.now_minute(), "tipster", "", body)
    return web.json_response({"at": message.created, "body": message.body}, status=201)


def add_routes(app: web.Application) -> None:
    router = app.router
    router.add_post("/tips/api/tips", submit_tip)
    router.add_post("/tips/send", submit_tip_form)
    router.add_post("/tips/api/uploads", start_upload)
    router.add_get("/tips/api/uploads/{media_id}", upload_state)
    router.add_put("/tips/api/uploads/{media_id}", put_chunk)
    router.add_post("/tips/api/follow-up", follow_up)
    router.add_post("/tips/api/messages", tipster_message)
