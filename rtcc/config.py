"""Configuration files: YAML validated by pydantic, with secrets from the environment.

A wrong key or value is reported as one message naming the file, the key and what is allowed.
Any string value may be written as ``${NAME}`` to read it from the environment variable NAME.
"""

from __future__ import annotations

import enum
import ipaddress
import math
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

# Sections kept in their own modules, re-exported here with the rest.
from rtcc.deployment_config import ClusterConfig as ClusterConfig
from rtcc.deployment_config import OverloadConfig as OverloadConfig
from rtcc.deployment_config import VmsRtspConfig as VmsRtspConfig
from rtcc.errors import ConfigError
from rtcc.programs_config import CadEndpoint as CadEndpoint
from rtcc.programs_config import EmergencyPolicy as EmergencyPolicy
from rtcc.programs_config import FacilitiesConfig as FacilitiesConfig
from rtcc.programs_config import IncidentsConfig as IncidentsConfig
from rtcc.programs_config import NotifyConfig as NotifyConfig
from rtcc.programs_config import NotifyRule as NotifyRule
from rtcc.programs_config import NotifyTemplate as NotifyTemplate
from rtcc.programs_config import Sta024Config as Sta024Config
from rtcc.transparency_config import TransparencyConfig

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SharingLevel(enum.StrEnum):
    """How an owner shares a camera, from least to most open."""

    REGISTRY_ONLY = "registry_only"
    ON_REQUEST = "on_request"
    LIVE_EMERGENCY = "live_emergency"
    LIVE_ALWAYS = "live_always"


class CameraKind(enum.StrEnum):
    PUBLIC = "public"
    BUSINESS = "business"
    RESIDENTIAL = "residential"
    SCHOOL = "school"
    WORSHIP = "worship"
    HOSPITAL = "hospital"
    OTHER = "other"


class ProfileConfig(_Model):
    url: str = Field(description="rtsp:// or rtsps:// URL of this profile, without credentials")
    username: str = ""
    password: SecretStr = SecretStr("")
    transport: Literal["tcp", "udp"] = "tcp"
    """RTSP transport; TCP by default because it survives NAT and loss without smearing."""
    transcode_h264: bool = False
    """Also offer this profile transcoded to H.264 (for an H.265 camera and browsers that cannot
    decode H.265). Costs CPU while someone watches it; keep it to the sub profile."""

    @field_validator("url")
    @classmethod
    def _no_inline_credentials(cls, value: str) -> str:
        if "@" in value:  # also "rtsp://user:pa/ss@host/", where the password looks like a path
            raise ValueError(
                "put the camera's credentials in 'username' and 'password', not in the URL"
            )
        return value


class OnvifControlConfig(_Model):
    """Where the server reaches a directly pulled camera's ONVIF services, for PTZ and presets."""

    url: str = Field(description="http(s):// device service address, e.g. "
                     "http://192.0.2.10/onvif/device_service, without credentials")
    username: str = ""
    password: SecretStr = SecretStr("")
    profile: str = ""
    """The ONVIF media profile token PTZ commands name; empty: the camera's first profile."""

    @field_validator("url")
    @classmethod
    def _device_address(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")) or "@" in value:
            raise ValueError("onvif.url must be an http:// or https:// address without "
                             "credentials (put them in 'username' and 'password')")
        return value


Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
ALL_DAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class TimeWindow(_Model):
    """A weekly window during which sharing applies (camera's local time, HH:MM)."""

    days: list[Weekday] = Field(default_factory=lambda: list(ALL_DAYS))
    start: str = "00:00"
    end: str = "24:00"

    @field_validator("start", "end")
    @classmethod
    def _hhmm(cls, value: str) -> str:
        match = re.fullmatch(r"(\d{2}):(\d{2})", value)
        if not match or int(match[1]) > 24 or int(match[2]) > 59 or (
            int(match[1]) == 24 and int(match[2]) != 0
        ):
            raise ValueError("time must be HH:MM between 00:00 and 24:00")
        return value


class CameraConfig(_Model):
    id: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]
    name: Annotated[str, Field(min_length=1, max_length=200)]
    owner: str = "department"
    site: str = ""
    lat: Annotated[float, Field(ge=-90, le=90)]
    lon: Annotated[float, Field(ge=-180, le=180)]
    heading: Annotated[float, Field(ge=0, le=360)] = 0.0
    fov: Annotated[float, Field(ge=1, le=360)] = 90.0
    range_m: Annotated[float, Field(gt=0, le=5000)] = 60.0
    kind: CameraKind = CameraKind.BUSINESS
    sharing: SharingLevel = SharingLevel.REGISTRY_ONLY
    windows: list[TimeWindow] = Field(default_factory=list)
    ptz_allowed: bool = False
    preload: bool = False
    record: bool = False
    retention_days: Annotated[int, Field(ge=1, le=3650)] | None = None
    """Days this camera's recordings are kept (held evidence excepted); None: the
    ``evidence.retention_days`` default."""
    profiles: dict[Literal["main", "sub"], ProfileConfig] = Field(default_factory=dict)
    onvif: OnvifControlConfig | None = None
    """The camera's ONVIF services, for PTZ and presets where ``ptz_allowed`` (pulled directly;
    an agent camera's ONVIF is on its owner's network, reached through the agent)."""

    @field_validator("lat", "lon", "heading", "fov", "range_m")
    @classmethod
    def _finite(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError("must be a finite number")
        return value


class ServerConfig(_Model):
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 8080
    public_url: str = ""
    """The URL people open, when the server sits behind a proxy; printed at start."""
    tls_cert: Path | None = None
    tls_key: Path | None = None
    header_timeout: Annotated[float, Field(gt=0, le=300)] = 10.0
    """Seconds a client has to send a request's line and headers once it started (or once
    its connection opened); a client trickling them in holds a connection only this long."""
    body_timeout: Annotated[float, Field(gt=0, le=3600)] = 60.0
    """Seconds a client may leave a request body stalled (no byte received) before the
    request fails; long uploads keep going as long as bytes keep arriving."""



class RelayConfig(_Model):
    max_sessions: Annotated[int, Field(ge=1)] = 1000
    """Live views the server holds at once."""
    max_sessions_per_user: Annotated[int, Field(ge=1)] = 16
    """Live views one staff account may hold at once."""
    max_sessions_per_owner: Annotated[int, Field(ge=1)] = 4
    """Live views one camera owner's account may hold at once."""
    connect_timeout: Annotated[float, Field(gt=0, le=120)] = 10.0
    """Seconds from the WHEP answer until the viewer's ICE and DTLS must be up."""
    ice_servers: list[str] = Field(default_factory=list)
    """STUN and TURN servers (``stun:HOST:PORT``, ``turn:HOST:PORT?transport=udp``,
    ``turns:HOST:5349?transport=tcp``). Empty (default): none, the server offers its own
    addresses only. STUN servers serve the server's own ICE (its public address); TURN servers
    are handed to each viewer with credentials minted from ``turn_secret``."""
    turn_secret: SecretStr = SecretStr("")
    """The TURN server's shared secret (coturn ``use-auth-secret`` with ``static-auth-secret``);
    required with a ``turn:`` server. Write it as ``${NAME}``."""
    turn_ttl: Annotated[float, Field(ge=60, le=7 * 86400)] = 12 * 3600.0
    """Seconds a minted TURN credential stays valid: longer than a view lasts (the TURN server
    refuses to refresh an allocation whose credential expired)."""
    host_addresses: list[str] = Field(default_factory=list)
    """IP addresses or interface names (``eth0``) the server offers host candidates on. Empty
    (default): every interface but loopback."""
    public_addresses: list[str] = Field(default_factory=list)
    """Public IP addresses that forward to this server port for port (a 1:1 NAT, a cloud
    instance's elastic address): each host candidate is offered under them too."""

    @field_validator("ice_servers")
    @classmethod
    def _ice_urls(cls, value: list[str]) -> list[str]:
        for url in value:
            if not re.fullmatch(r"stuns?:[^?:\s<>\"]+(:\d{1,5})?"
                                r"|turns?:[^?:\s<>\"]+(:\d{1,5})?(\?transport=(udp|tcp))?", url):
                raise ValueError(f"{url!r} is not a STUN or TURN URL such as stun:HOST:3478 or "
                                 "turn:HOST:3478?transport=udp (transport udp or tcp; a host "
                                 "name or IPv4 address)")
        return value

    @field_validator("host_addresses")
    @classmethod
    def _host_addresses(cls, value: list[str]) -> list[str]:
        for entry in value:
            try:
                ipaddress.ip_address(entry)
            except ValueError:
                if not re.fullmatch(r"[A-Za-z0-9_.:-]{1,15}", entry):
                    raise ValueError(f"{entry!r} is neither an IP address nor an interface "
                                     "name such as eth0") from None
        return value

    @field_validator("public_addresses")
    @classmethod
    def _public_addresses(cls, value: list[str]) -> list[str]:
        for entry in value:
            try:
                ipaddress.ip_address(entry)
            except ValueError:
                raise ValueError(f"{entry!r} is not an IP address such as 203.0.113.7"
                                 ) from None
        return value

    @model_validator(mode="after")
    def _turn_needs_secret(self) -> RelayConfig:
        turn = [url for url in self.ice_servers if url.startswith(("turn:", "turns:"))]
        if turn and not self.turn_secret.get_secret_value():
            raise ValueError(f"relay.turn_secret must be set to use {turn[0]}: viewers get "
                             "TURN credentials minted from the TURN server's shared secret")
        return self



class DatabaseConfig(_Model):
    url: SecretStr = SecretStr("")
    """Where the stores keep their tables: empty (the embedded default: one SQLite file per store
    in ``data_dir``) or ``postgresql://USER:PASSWORD@HOST:PORT/DB`` (PostgreSQL 15+ with PostGIS;
    each store in a schema of its own). Write the password as ``${NAME}``."""
    pool_size: Annotated[int, Field(ge=1, le=100)] = 4
    """Connections each store of this process may hold open to PostgreSQL."""
    connect_timeout: Annotated[float, Field(gt=0, le=120)] = 5.0
    """Seconds to open a connection or wait for a free one before a request fails closed."""
    statement_timeout: Annotated[float, Field(gt=0, le=3600)] = 15.0
    """Seconds one statement may run on PostgreSQL before it is cancelled."""
    migrate_on_start: bool | None = None
    """Bring every store's schema up to date when the server starts. Unset: yes on SQLite, no on
    PostgreSQL (run ``rtcc db upgrade`` first: several nodes must not race an upgrade)."""

    @field_validator("url")
    @classmethod
    def _database_url(cls, value: SecretStr) -> SecretStr:
        text = value.get_secret_value()
        if text and not text.startswith(("postgresql://", "postgres://", "sqlite:///")):
            raise ValueError("database.url must be empty (SQLite files in data_dir), "
                             "sqlite:///FOLDER or postgresql://USER:PASSWORD@HOST:PORT/DB")
        return value



class AgentConfig(_Model):
    max_cameras: Annotated[int, Field(ge=1, le=10000)] = 64
    """Cameras one owner's agent may report; the rest of its inventory is refused."""


class HubConfig(_Model):
    close_after: Annotated[float, Field(ge=0)] = 10.0
    start_timeout: Annotated[float, Field(gt=0)] = 10.0
    gop_cache_bytes: Annotated[int, Field(ge=65536)] = 8 * 1024 * 1024
    gop_cache_age: Annotated[float, Field(gt=0)] = 12.0
    subscriber_queue: Annotated[int, Field(ge=2)] = 120
    transcode_max_width: Annotated[int, Field(ge=16, le=3840)] = 640
    transcode_max_height: Annotated[int, Field(ge=16, le=2160)] = 360
    transcode_max_fps: Annotated[float, Field(gt=0, le=60)] = 15.0
    """Caps of every H.264 stream transcoded from a camera's profile (``transcode_h264``)."""


class IngestConfig(_Model):
    open_timeout: Annotated[float, Field(gt=0)] = 5.0
    """Seconds to connect and read the camera's description."""
    stall_timeout: Annotated[float, Field(gt=0)] = 10.0
    """Seconds without a packet before the source reconnects."""
    backoff_initial: Annotated[float, Field(gt=0)] = 1.0
    """Seconds between the first reconnect attempts (a restarting camera is back quickly)."""
    backoff_max: Annotated[float, Field(gt=0)] = 5.0
    """Longest wait between attempts while the camera is unreachable. Sources only run while
    someone watches, so viewers are waiting: keep it short."""
    fatal_retry: Annotated[float, Field(gt=0)] = 60.0
    """Wait after the camera refused the credentials, so retries do not lock its account."""
    rtsp_client: Literal["native", "ffmpeg"] = "native"
    """``native``: the asyncio RTSP client (TCP interleaved, H.264/H.265); it hands cameras it
    cannot pull (rtsps, UDP, redirects, other codecs) to the FFmpeg reader. ``ffmpeg``: FFmpeg
    for every camera."""


class SecurityConfig(_Model):
    require_totp: bool = True
    """Staff roles must use a second factor. Only a demo may turn this off."""
    allow_private_camera_hosts: list[str] = Field(default_factory=list)
    """Networks (CIDR) cameras may be pulled from directly although private, e.g. the demo's
    loopback simulator or a department VLAN."""
    session_idle_minutes: Annotated[int, Field(ge=1, le=30)] = 30
    audit_checkpoint_entries: Annotated[int, Field(ge=1)] = 1000
    """A signed checkpoint of the audit chain's head is written after this many new entries..."""
    audit_checkpoint_seconds: Annotated[float, Field(gt=0, le=86400)] = 300.0
    """...or this many seconds after the last one if the head moved, and at server stop."""
    emergency_grant_minutes: Annotated[float, Field(gt=0, le=1440)] = 60.0
    """Minutes linking a camera to an incident lets staff watch it (``live_emergency``); linking
    it again renews the grant, closing the incident ends it."""
    enforcement_interval_seconds: Annotated[float, Field(ge=0.2, le=60)] = 5.0
    """Every open view is checked again at least this often (besides the events and deadlines
    that end it at once)."""
    login_attempts_per_minute: Annotated[float, Field(gt=0, le=10000)] = 10.0
    """Failed logins (and sign-ups) one client address may make per minute, on average; each
    costs a password hash. Past it the server answers 429 with Retry-After, without hashing."""
    login_burst: Annotated[int, Field(ge=1, le=10000)] = 10
    """Attempts one address may make at once before the per-minute rate applies (at least the
    account lockout threshold, 5, plus a correct login)."""
    login_attempts_per_minute_global: Annotated[float, Field(gt=0, le=100000)] = 60.0
    """Failed logins and sign-ups the whole server accepts per minute, from all addresses."""
    login_burst_global: Annotated[int, Field(ge=1, le=100000)] = 60
    """Attempts the whole server accepts at once before the global rate applies."""
    trusted_proxies: list[str] = Field(default_factory=list)
    """Networks (CIDR) of reverse proxies whose X-Forwarded-For names the client; the client
    address is what login limits, audit entries and sessions record. Empty: the peer address."""

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for network in value:
            try:
                ipaddress.ip_network(network, strict=False)
            except ValueError:
                raise ValueError(f"{network!r} is not a network address such as "
                                 "10.0.0.0/8 or 2001:db8::/32") from None
        return value


class EvidenceConfig(_Model):
    segment_seconds: Annotated[float, Field(ge=1, le=60)] = 10.0
    """Target length of a recorded segment; segments are cut at the first keyframe after it."""
    min_free_mb: Annotated[int, Field(ge=0)] = 1024
    """Recording stops (with an alert) when the recordings disk has less free space than this."""
    retention_days: Annotated[int, Field(ge=1, le=3650)] = 30
    """Default days recordings are kept; segments under legal hold are never evicted."""
    export_link_hours: Annotated[float, Field(gt=0, le=168)] = 24.0
    """Hours a download link of an export stays valid."""
    request_valid_days: Annotated[float, Field(gt=0, le=365)] = 30.0
    """Days an approved footage request lets its investigator retrieve the requested range of
    recorded footage (never live video)."""


class Place(_Model):
    """A named location the console offers when an incident is placed (an address, a landmark)."""

    name: Annotated[str, Field(min_length=1, max_length=200)]
    lat: Annotated[float, Field(ge=-90, le=90)]
    lon: Annotated[float, Field(ge=-180, le=180)]


class ConsoleConfig(_Model):
    tile_url: str = ""
    """Map tiles of the department's choice, e.g. ``https://tiles.example.org/{z}/{x}/{y}.png``
    (https, or a path on this server); empty: the map is drawn on a plain background."""
    tile_attribution: Annotated[str, Field(max_length=300)] = ""
    """Credit the tile provider asks for, shown as text under the map."""
    tiles_path: Path | None = None
    """An MBTiles file of raster PNG tiles this server serves at ``/tiles/{z}/{x}/{y}.png``
    (used when ``tile_url`` is empty): a basemap without any outside service. None: none."""
    places: list[Place] = Field(default_factory=list)
    """Addresses and landmarks an analyst can pick as an incident location."""

    @field_validator("tile_url")
    @classmethod
    def _tile_template(cls, value: str) -> str:
        if not value:
            return value
        if not (value.startswith("https://") or value.startswith("/")):
            raise ValueError("tile_url must start with https:// or / (the page only loads "
                             "images over https or from this server)")
        if not all(part in value for part in ("{z}", "{x}", "{y}")):
            raise ValueError("tile_url must contain {z}, {x} and {y}")
        return value


class CamsimCameraConfig(_Model):
    name: str
    path: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
    width: Annotated[int, Field(ge=64, le=3840)] = 1280
    height: Annotated[int, Field(ge=64, le=2160)] = 720
    fps: Annotated[int, Field(ge=1, le=60)] = 30
    bitrate_kbps: Annotated[int, Field(ge=50, le=20000)] = 2000
    gop_seconds: Annotated[float, Field(gt=0, le=20)] = 2.0
    profile: Literal["baseline", "main", "high"] = "high"
    username: str = ""
    password: SecretStr = SecretStr("")


class CamsimConfig(_Model):
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)] = 8554
    cameras: list[CamsimCameraConfig] = Field(default_factory=list)


class Settings(_Model):
    server: ServerConfig = ServerConfig()
    store: str = ""
    """The camera catalog: ``sqlite:///PATH`` (embedded default), ``redis://HOST:PORT/DB`` or
    ``postgresql://USER:PASSWORD@HOST:PORT/DB`` (PostGIS). Empty: the catalog follows
    ``database.url`` (PostGIS in the catalog's schema) when that is PostgreSQL, otherwise
    ``rtcc.sqlite3`` inside ``data_dir``. Leave it empty rather than repeat a PostgreSQL URL
    here: ``database.url`` keeps its password secret."""
    data_dir: Path = Path("data")
    database: DatabaseConfig = DatabaseConfig()
    hub: HubConfig = HubConfig()
    ingest: IngestConfig = IngestConfig()
    relay: RelayConfig = RelayConfig()
    overload: OverloadConfig = OverloadConfig()
    vms_rtsp: VmsRtspConfig = VmsRtspConfig()
    agent: AgentConfig = AgentConfig()
    security: SecurityConfig = SecurityConfig()
    evidence: EvidenceConfig = EvidenceConfig()
    console: ConsoleConfig = ConsoleConfig()
    incidents: IncidentsConfig = IncidentsConfig()
    cluster: ClusterConfig = ClusterConfig()
    notify: NotifyConfig = NotifyConfig()
    transparency: TransparencyConfig = TransparencyConfig()
    """What the public map and open data publish (rtcc.transparency_config)."""
    facilities: FacilitiesConfig = FacilitiesConfig()
    cameras: list[CameraConfig] = Field(default_factory=list)
    camsim: CamsimConfig | None = None
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["text", "json"] = "text"
    """``json``: one JSON object per line (time, level, logger, message and the record's extra
    fields) for log collectors; ``--log-format`` on the command line overrides it."""
    reconcile_seconds: Annotated[float, Field(gt=0, le=3600)] = 30.0
    """Seconds between full re-reads of the catalog by the components that follow its events
    (camera sync, recording): an event missed while the store was unreachable is made up for
    within this time."""

    @model_validator(mode="after")
    def _store_in_data_dir(self) -> Settings:
        if not self.store and not self.database.url.get_secret_value().startswith(
                ("postgresql://", "postgres://")):
            # Frozen model: the default is derived once, here, from data_dir.
            object.__setattr__(self, "store", f"sqlite:///{self.data_dir / 'rtcc.sqlite3'}")
        return self

    @field_validator("store")
    @classmethod
    def _store_url(cls, value: str) -> str:
        if value and not value.startswith(("sqlite:///", "redis://", "rediss://",
                                           "postgresql://", "postgres://")):
            raise ValueError("store must start with sqlite:///, redis:// or postgresql://")
        return value

    @field_validator("cameras")
    @classmethod
    def _unique_ids(cls, cameras: list[CameraConfig]) -> list[CameraConfig]:
        seen: set[str] = set()
        for camera in cameras:
            if camera.id in seen:
                raise ValueError(f"camera id {camera.id!r} is used twice")
            seen.add(camera.id)
        return cameras


MAX_CONFIG_VALUES = 100_000
"""Values a configuration may hold once YAML aliases are followed: far above any real one, far
below what nested aliases (a "billion laughs" document) expand to."""
MAX_CONFIG_DEPTH = 32


def _expand_env(value: Any, where: str, env: Mapping[str, str],
                budget: list[int] | None = None, depth: int = 0) -> Any:
    budget = [MAX_CONFIG_VALUES] if budget is None else budget
    budget[0] -= 1
    if budget[0] < 0:
        raise ConfigError(f"{where or '(top level)'}: the configuration holds more than "
                          f"{MAX_CONFIG_VALUES} values (nested YAML aliases?); write it out "
                          "plainly")
    if depth > MAX_CONFIG_DEPTH:
        raise ConfigError(f"{where}: the configuration nests deeper than {MAX_CONFIG_DEPTH} levels")
    if isinstance(value, str):
        def repl(match: re.Match[str]) -> str:
            name = match[1]
            if name not in env:
                raise ConfigError(f"{where}: environment variable {name} is not set")
            return env[name]

        return _ENV_REF.sub(repl, value)
    if isinstance(value, list):
        return [_expand_env(item, f"{where}[{i}]", env, budget, depth + 1)
                for i, item in enumerate(value)]
    if isinstance(value, dict):
        return {
            key: _expand_env(item, f"{where}.{key}" if where else str(key), env, budget,
                             depth + 1)
            for key, item in value.items()
        }
    return value


_USERINFO = re.compile(r"//[^/@\s]*@")


def redact_url(text: str) -> str:
    """Hide any user:password@ part of URLs inside a text."""
    return _USERINFO.sub("//***@", text)


def _location(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def format_validation_error(source: str, error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        key = _location(tuple(item["loc"]))
        message = item["msg"]
        if item["type"] == "extra_forbidden":
            message = "unknown key (check its spelling and the documented keys)"
        elif "input" in item and not isinstance(item["input"], dict | list):
            # Echo the offending value so a person can find it, but never a secret.
            lowered = key.lower()
            if "password" not in lowered and "secret" not in lowered and "token" not in lowered:
                message = f"{message} (got {redact_url(repr(item['input']))})"
        lines.append(f"{source}: {key}: {message}")
    return "\n".join(lines)


def parse_settings(data: Any, source: str, env: Mapping[str, str] | None = None) -> Settings:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping of keys to values")
    try:
        expanded = _expand_env(data, "", os.environ if env is None else env)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    try:
        return Settings.model_validate(expanded)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(source, exc)) from None


def load_settings(path: Path, env: Mapping[str, str] | None = None) -> Settings:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the configuration file: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start}); save it as UTF-8"
                          ) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{path}: not valid YAML: nested too deeply") from None
    return parse_settings(data, str(path), env)
