"""Configuration of how a server is deployed: admission control under load, re-publishing to
the department's VMS, and several nodes. ``rtcc.config.Settings`` holds them; they are
re-exported there."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class OverloadConfig(_Model):
    """Admission control: when the event loop that sends video runs late, new work (views,
    exports, uploads) is refused with 503 and ``Retry-After`` so the views already open keep
    their frames."""

    lag_threshold: Annotated[float, Field(gt=0, le=60)] = 0.25
    """Seconds of event-loop lag above which the server counts as overloaded."""
    sustain: Annotated[float, Field(ge=0, le=60)] = 1.0
    """Seconds the lag must stay above the threshold before new work is refused (one slow
    moment does not turn viewers away)."""
    sample_interval: Annotated[float, Field(gt=0, le=10)] = 0.1
    """Seconds between two measurements of the loop's lag."""
    window: Annotated[float, Field(gt=0, le=600)] = 10.0
    """Seconds over which ``/metrics`` reports the worst lag; refused clients are told to
    retry after half of it."""


class VmsRtspConfig(_Model):
    """Re-publishing granted cameras over RTSP to the department's VMS."""

    enabled: bool = False
    host: str = "127.0.0.1"
    """Address the RTSP server listens on; put it on the network the VMS reaches (RTSP here has
    no TLS: keep it on the department's video network)."""
    port: Annotated[int, Field(ge=0, le=65535)] = 8555
    """0 picks a free port (tests)."""
    max_sessions: Annotated[int, Field(ge=1, le=10000)] = 64
    """Connections held at once; one more is answered 503."""
    request_timeout: Annotated[float, Field(gt=0, le=300)] = 10.0
    """Seconds a VMS has for each request until it plays."""
    write_timeout: Annotated[float, Field(gt=0, le=300)] = 10.0
    """Seconds a VMS may leave its stream unread before its session ends."""
    max_request_bytes: Annotated[int, Field(ge=1024, le=65536)] = 8192
    """Bytes of one request's line and headers."""
    max_auth_failures: Annotated[int, Field(ge=1, le=100)] = 3
    """Wrong credentials on one connection before it is closed."""
    udp: bool = True
    """Also serve RTP over UDP (unicast, only to the VMS's own address); false: TCP only."""
    profile: str = "main"
    """The camera profile re-published."""
    purpose: str = "re-published to the department's VMS"
    """The purpose audited for a view whose URL carries no ``?purpose=``."""


class ClusterConfig(_Model):
    redis_url: SecretStr = SecretStr("")
    """Empty: this server is alone. ``redis://HOST:PORT/DB``: it joins the nodes coordinated on
    that Redis (they must share one PostgreSQL ``database.url``). Write a password as
    ``${NAME}``."""
    node_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9._:-]{0,100}$")] = ""
    """This node's name in the cluster; empty: the host name and the HTTP port."""
    advertise_url: str = ""
    """Where the other nodes reach this node's HTTP port; empty: the URL it listens on."""
    lease_seconds: Annotated[float, Field(ge=1, le=60)] = 5.0
    """A camera's ownership lease: renewed every third of it while the node pulls the camera;
    when the node dies, another node may take the camera this long after the last renewal."""
    secret: SecretStr = SecretStr("")
    """The key (at least 32 characters) the nodes sign their internal requests with; the same
    on every node. Write it as ``${NAME}``."""

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: SecretStr) -> SecretStr:
        text = value.get_secret_value()
        if text and not text.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("cluster.redis_url must be empty or redis://HOST:PORT/DB")
        return value

    @model_validator(mode="after")
    def _secret_when_clustered(self) -> ClusterConfig:
        if self.redis_url.get_secret_value() and len(self.secret.get_secret_value()) < 32:
            raise ValueError("cluster.secret must hold at least 32 characters when "
                             "cluster.redis_url is set (the same on every node)")
        return self
