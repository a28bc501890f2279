"""Tunables of the live relay, each with the default the server runs with."""

from __future__ import annotations

from dataclasses import dataclass, field

from relay.history import DEFAULT_SLOTS


@dataclass(frozen=True, slots=True)
class IceServer:
    """A STUN or TURN server handed to aiortc (``stun:host:port``, ``turn:host:port``)."""

    urls: str
    username: str | None = None
    credential: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class RelaySettings:
    ice_servers: tuple[IceServer, ...] = ()
    """No STUN/TURN by default: the server answers with its host candidates, which is what a
    server reachable by its viewers needs (and no packet leaves for a public STUN server).
    ``stun:`` servers are used by the server's own peer connections (to learn its public
    address); ``turn:``/``turns:`` servers are handed to viewers (``Link`` headers) with
    credentials minted per session from ``turn_secret``."""
    turn_secret: str = field(default="", repr=False)
    """The TURN server's shared secret (coturn ``static-auth-secret``); empty: TURN servers are
    handed out with the username and credential written with them, if any."""
    turn_ttl: float = 12 * 3600.0
    """Seconds a minted TURN credential stays valid (it must outlive the view: the TURN server
    refuses refreshes of an allocation once it expired)."""
    host_addresses: tuple[str, ...] = ()
    """Addresses (IP literals) or interface names (``eth0``) the server's host candidates are
    gathered on; empty: every interface but loopback (aioice's default)."""
    public_addresses: tuple[str, ...] = ()
    """Public IP addresses that forward to the server's host candidates port for port (a 1:1
    NAT); each is offered as a server-reflexive candidate beside every host candidate."""
    max_sessions: int = 1000
    """Viewers the process accepts at once; beyond it a WHEP POST gets 503."""
    max_sessions_per_user: int = 16
    """Live views one staff account may hold at once (a video wall's worth); beyond it 429."""
    max_sessions_per_owner: int = 4
    """Live views one camera owner's account may hold at once; beyond it 429."""
    max_offer_bytes: int = 64 * 1024
    negotiate_timeout: float = 10.0
    """Seconds to apply the offer and gather candidates for the answer."""
    connect_timeout: float = 10.0
    """Seconds from the answer until ICE and DTLS must be up, else the session ends (and is
    counted as never connected)."""
    viewer_timeout: float = 10.0
    """Seconds of sending media without any RTCP back before a viewer counts as gone."""
    keyframe_request_interval: float = 1.0
    """At most one PLI/FIR per viewer is answered from the GOP cache in this many seconds."""
    catchup_bitrate: float = 40e6
    """Bits per second at which a joining viewer is sent the cached GOP (and timestamps follow)."""
    catchup_min_step: float = 0.002
    """Seconds of RTP time each catch-up frame takes at least, so a decoder can keep up."""
    history_slots: int = DEFAULT_SLOTS
    """Packets kept per viewer to answer NACKs (a power of two; 4096 is >= 1 s up to 40 Mbit/s)."""
    udp_gso: bool = True
    """Send each frame's packets with one system call (Linux UDP segmentation offload) when the
    kernel allows; off: one ``sendto`` per packet."""
    compiled_send: bool = True
    """Write and protect each run of a frame's packets with the compiled loop
    (``relay.fastpath``) when the installation has it; off, or not built: the same work in
    Python."""
    shared_fanout: bool = True
    """Viewers that have caught up are fed by one loop per stream (one wake-up per frame for
    all of them) instead of a loop each."""
    live_tick: float = 0.005
    """Seconds between the rounds in which one task sends the new frames of every stream to
    its live viewers (a frame waits at most this long); 0: one wake-up per frame and stream.
    With many cameras a round carries frames of several, sent while the code is warm."""
    cors_origins: tuple[str, ...] = ()
    """Origins of other sites' WHEP players allowed to call the endpoint ("*" for any); the
    server's own pages need none."""
