#!/usr/bin/python3
"""Simulated RTSP cameras served by GStreamer's gst-rtsp-server.

Run by Debian's ``/usr/bin/python3`` (which has the ``gi`` bindings); it imports nothing from
the project. Usage::

    /usr/bin/python3 gst_server.py SPEC.json     # or "-" to read one JSON line from stdin

The spec::

    {"host": "127.0.0.1", "port": 8554,          # port 0 picks a free port
     "cameras": [{"name": "Lobby", "path": "lobby", "width": 640, "height": 360, "fps": 15,
                  "bitrate_kbps": 800, "gop_seconds": 2, "profile": "high",
                  "codec": "h264",                # or "h265"
                  "bframes": 0, "audio": "",      # "", "pcma", "opus" or "aac"
                  "parameter_sets_in_band": true, # false: SPS/PPS only in the SDP
                  "pattern": "smpte", "username": "", "password": "",
                  "auth": "digest",               # or "basic"
                  "session_timeout": 0}]}         # >0: idle seconds before a session
                                                  # expires (smallest set, for all sessions)

Each camera is one shared mount: one encoder, however many clients. Cameras with a user name
require RTSP digest authentication (Basic when every such camera asks for it). When listening,
prints ``READY port=N`` on stdout. Exits on SIGTERM or SIGINT, and, when the spec came from
stdin, when stdin closes (its parent is gone).

Exit status: 2 bad spec, 3 python3-gi missing, 4 gst-rtsp-server missing, 5 a GStreamer element
missing, 6 cannot listen. The reason is printed on stderr as ``MISSING ...`` or ``ERROR ...``.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sys

PACKAGES = {
    "videotestsrc": "gstreamer1.0-plugins-base",
    "audiotestsrc": "gstreamer1.0-plugins-base",
    "videoconvert": "gstreamer1.0-plugins-base",
    "audioconvert": "gstreamer1.0-plugins-base",
    "audioresample": "gstreamer1.0-plugins-base",
    "textoverlay": "gstreamer1.0-x",
    "clockoverlay": "gstreamer1.0-x",
    "opusenc": "gstreamer1.0-plugins-base",
    "x264enc": "gstreamer1.0-plugins-ugly",
    "rtph264pay": "gstreamer1.0-plugins-good",
    "x265enc": "gstreamer1.0-plugins-bad",
    "rtph265pay": "gstreamer1.0-plugins-good",
    "alawenc": "gstreamer1.0-plugins-good",
    "rtppcmapay": "gstreamer1.0-plugins-good",
    "rtpopuspay": "gstreamer1.0-plugins-good",
    "voaacenc": "gstreamer1.0-plugins-bad",
    "rtpmp4gpay": "gstreamer1.0-plugins-good",
}
PATTERNS = {
    "smpte", "snow", "black", "white", "red", "green", "blue", "checkers-1", "checkers-2",
    "checkers-4", "checkers-8", "circular", "blink", "smpte75", "zone-plate", "gamut",
    "chroma-zone-plate", "solid-color", "ball", "smpte100", "bar", "pinwheel", "spokes",
    "gradient", "colors",
}
PATH_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def fail(status, message):
    print(message, file=sys.stderr, flush=True)
    sys.exit(status)


def load_gi():
    try:
        import gi
    except ImportError:
        fail(3, "MISSING python3-gi: install the Debian package python3-gi "
                "(and run this script with /usr/bin/python3)")
    try:
        gi.require_version("Gst", "1.0")
        gi.require_version("GstRtsp", "1.0")
        gi.require_version("GstRtspServer", "1.0")
        from gi.repository import GLib, Gst, GstRtsp, GstRtspServer
    except (ImportError, ValueError) as exc:
        fail(4, f"MISSING gir1.2-gst-rtsp-server-1.0: install that Debian package ({exc})")
    return GLib, Gst, GstRtsp, GstRtspServer


def camera_spec(raw, index):
    if not isinstance(raw, dict):
        fail(2, f"ERROR cameras[{index}] must be an object")
    cam = {
        "name": str(raw.get("name") or raw.get("path") or f"camera {index}"),
        "path": str(raw.get("path", "")),
        "width": int(raw.get("width", 1280)),
        "height": int(raw.get("height", 720)),
        "fps": int(raw.get("fps", 30)),
        "bitrate_kbps": int(raw.get("bitrate_kbps", 2000)),
        "gop_seconds": float(raw.get("gop_seconds", 2.0)),
        "profile": str(raw.get("profile", "high")),
        "codec": str(raw.get("codec", "h264")),
        "bframes": int(raw.get("bframes", 0)),
        "audio": str(raw.get("audio", "")),
        "parameter_sets_in_band": bool(raw.get("parameter_sets_in_band", True)),
        "pattern": str(raw.get("pattern", "smpte")),
        "session_timeout": int(raw.get("session_timeout", 0)),
        "auth": str(raw.get("auth", "digest")),
        "username": str(raw.get("username", "")),
        "password": str(raw.get("password", "")),
    }
    where = f"cameras[{index}]"
    if not PATH_RE.match(cam["path"]):
        fail(2, f"ERROR {where}.path must be 1-64 letters, digits, '_' or '-'")
    if cam["profile"] not in ("baseline", "main", "high"):
        fail(2, f"ERROR {where}.profile must be baseline, main or high")
    if cam["codec"] not in ("h264", "h265"):
        fail(2, f"ERROR {where}.codec must be h264 or h265")
    if cam["audio"] not in ("", "pcma", "opus", "aac"):
        fail(2, f"ERROR {where}.audio must be empty, pcma, opus or aac")
    if cam["auth"] not in ("digest", "basic"):
        fail(2, f"ERROR {where}.auth must be digest or basic")
    if cam["pattern"] not in PATTERNS:
        fail(2, f"ERROR {where}.pattern must be one of {sorted(PATTERNS)}")
    if not (1 <= cam["fps"] <= 120 and 16 <= cam["width"] <= 7680 and 16 <= cam["height"] <= 4320):
        fail(2, f"ERROR {where}: width, height or fps out of range")
    if not 0 <= cam["bframes"] <= 16:
        fail(2, f"ERROR {where}.bframes must be 0-16")
    return cam


def load_spec(argument):
    try:
        if argument == "-":
            text = sys.stdin.readline()
        else:
            with open(argument, encoding="utf-8") as spec_file:
                text = spec_file.read()
        spec = json.loads(text)
    except (OSError, ValueError) as exc:
        fail(2, f"ERROR cannot read the camera spec: {exc}")
    if not isinstance(spec, dict) or not isinstance(spec.get("cameras"), list):
        fail(2, "ERROR the spec must be an object with a 'cameras' list")
    cameras = [camera_spec(raw, i) for i, raw in enumerate(spec["cameras"])]
    paths = [cam["path"] for cam in cameras]
    if len(set(paths)) != len(paths):
        fail(2, "ERROR two cameras use the same path")
    return str(spec.get("host", "127.0.0.1")), int(spec.get("port", 8554)), cameras


def elements_for(cam):
    names = ["videotestsrc", "videoconvert", "textoverlay", "clockoverlay"]
    names += ["x264enc", "rtph264pay"] if cam["codec"] == "h264" else ["x265enc", "rtph265pay"]
    if cam["audio"]:
        names += ["audiotestsrc", "audioconvert", "audioresample"]
        names += {"pcma": ["alawenc", "rtppcmapay"], "opus": ["opusenc", "rtpopuspay"],
                  "aac": ["voaacenc", "rtpmp4gpay"]}[cam["audio"]]
    return names


def overlay_text(name):
    # textoverlay reads its text as Pango markup: a bare "&" makes the markup invalid and the
    # name is not drawn at all, so it is written as the entity.
    safe = re.sub(r"[^A-Za-z0-9 _.,:()#&/-]", "", name)[:60] or "camera"
    return safe.replace("&", "&amp;")


def launch_line(cam):
    fps = cam["fps"]
    gop = max(1, round(cam["gop_seconds"] * fps))
    interval = -1 if cam["parameter_sets_in_band"] else 0
    # Without in-band parameter sets x264 writes SPS/PPS only into the AVC caps, and with
    # config-interval=0 the client finds them only in the SDP (sprop-parameter-sets).
    fmt = "" if cam["parameter_sets_in_band"] else ",stream-format=avc"
    video = (
        f"videotestsrc is-live=true pattern={cam['pattern']} ! "
        f"video/x-raw,width={cam['width']},height={cam['height']},framerate={fps}/1 ! "
        f'textoverlay text="{overlay_text(cam["name"])}" valignment=top halignment=left '
        'font-desc="Sans 16" shaded-background=true ! '
        'clockoverlay valignment=bottom halignment=right time-format="%H:%M:%S" '
        'font-desc="Sans 16" shaded-background=true ! videoconvert ! '
    )
    if cam["codec"] == "h264":
        if cam["bframes"]:
            tuning = f"bframes={cam['bframes']} b-adapt=false rc-lookahead=4 sync-lookahead=0"
        else:
            tuning = "tune=zerolatency bframes=0"
        # The ultrafast preset turns off CABAC and 8x8 transforms, so x264 would write a
        # Constrained Baseline stream whatever the caps say: turn back on what the profile uses.
        features = {"baseline": [], "main": ["cabac=1"], "high": ["cabac=1", "8x8dct=1"]}
        options = features[cam["profile"]]
        if not cam["parameter_sets_in_band"]:
            options = [*options, "repeat-headers=0"]
        if options:
            tuning += f' option-string="{":".join(options)}"'
        video += (
            f"x264enc {tuning} speed-preset=ultrafast key-int-max={gop} "
            f"bitrate={cam['bitrate_kbps']} ! video/x-h264,profile={cam['profile']}{fmt} ! "
            f"rtph264pay name=pay0 pt=96 config-interval={interval}"
        )
    else:
        video += (
            f"x265enc tune=zerolatency speed-preset=ultrafast key-int-max={gop} "
            f"bitrate={cam['bitrate_kbps']} ! rtph265pay name=pay0 pt=96 "
            f"config-interval={interval}"
        )
    audio = ""
    if cam["audio"]:
        source = "audiotestsrc is-live=true wave=sine freq=440 volume=0.2 ! audioconvert ! "
        audio = {
            "pcma": source + "audioresample ! audio/x-raw,rate=8000,channels=1 ! alawenc ! "
                    "rtppcmapay name=pay1 pt=8",
            "opus": source + "audioresample ! audio/x-raw,rate=48000 ! opusenc ! "
                    "rtpopuspay name=pay1 pt=97",
            "aac": source + "audioresample ! audio/x-raw,rate=16000,channels=1 ! voaacenc ! "
                   "rtpmp4gpay name=pay1 pt=98",
        }[cam["audio"]]
    return f"( {video} {audio} )"


def allow_role(factory, role, construct):
    from gi.repository import Gst

    flag = "true" if construct else "false"
    structure, _ = Gst.Structure.from_string(
        f"{role}, media.factory.access=(boolean)true, media.factory.construct=(boolean){flag}"
    )
    factory.add_role_from_structure(structure)


def main(argv):
    if len(argv) != 2:
        fail(2, "ERROR usage: gst_server.py SPEC.json (or - for stdin)")
    host, port, cameras = load_spec(argv[1])
    glib, gst, gst_rtsp, rtsp_server = load_gi()
    gst.init(None)
    for cam in cameras:
        for element in elements_for(cam):
            if gst.ElementFactory.find(element) is None:
                fail(5, f"MISSING element {element}: install the Debian package "
                        f"{PACKAGES.get(element, 'that provides it')}")

    server = rtsp_server.RTSPServer()
    server.set_address(host)
    server.set_service(str(port))
    mounts = server.get_mount_points()
    protected = [cam for cam in cameras if cam["username"]]
    if protected:
        auth = rtsp_server.RTSPAuth()
        basic_only = all(cam["auth"] == "basic" for cam in protected)
        auth.set_supported_methods(gst_rtsp.RTSPAuthMethod.BASIC if basic_only
                                   else gst_rtsp.RTSPAuthMethod.DIGEST)
        anonymous = rtsp_server.RTSPToken()
        anonymous.set_string("media.factory.role", "anonymous")
        auth.set_default_token(anonymous)
        for cam in protected:
            token = rtsp_server.RTSPToken()
            token.set_string("media.factory.role", f"role-{cam['path']}")
            if cam["auth"] == "basic":
                auth.add_basic(rtsp_server.RTSPAuth.make_basic(cam["username"], cam["password"]),
                               token)
            else:
                auth.add_digest(cam["username"], cam["password"], token)
        server.set_auth(auth)

    for cam in cameras:
        factory = rtsp_server.RTSPMediaFactory()
        factory.set_launch(launch_line(cam))
        factory.set_shared(True)
        if cam["username"]:
            # Anonymous clients may see the mount but not play it: the server answers 401 with
            # a digest challenge (a 404 would tell the client there is nothing to log in to).
            allow_role(factory, "anonymous", construct=False)
            allow_role(factory, f"role-{cam['path']}", construct=True)
        else:
            allow_role(factory, "anonymous", construct=True)
        mounts.add_factory(f"/{cam['path']}", factory)

    timeouts = [cam["session_timeout"] for cam in cameras if cam["session_timeout"] > 0]
    if timeouts:
        timeout = min(timeouts)

        def new_session(_client, session):
            session.set_timeout(timeout)

        server.connect("client-connected",
                       lambda _server, client: client.connect("new-session", new_session))
        pool = server.get_session_pool()
        glib.timeout_add(250, lambda: pool.cleanup() >= 0)

    try:
        source_id = server.attach(None)
    except glib.Error as exc:
        fail(6, f"ERROR cannot listen on {host}:{port}: {exc.message}")
    if not source_id:
        fail(6, f"ERROR cannot listen on {host}:{port}")

    loop = glib.MainLoop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        glib.unix_signal_add(glib.PRIORITY_HIGH, signum, lambda *_: loop.quit() or False)
    if argv[1] == "-":
        def stdin_event(fd, _condition):
            try:
                data = os.read(fd, 4096)
            except OSError:
                data = b""
            if not data:
                loop.quit()
                return False
            return True

        glib.io_add_watch(sys.stdin.fileno(), glib.PRIORITY_DEFAULT,
                          glib.IOCondition.IN | glib.IOCondition.HUP, stdin_event)
    print(f"READY port={server.get_bound_port()} cameras={len(cameras)}", flush=True)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
