"""What the department publishes to the public (``transparency:`` in the configuration)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

# NIBRS offence codes and the department's CAD type codes share one namespace here: a code is
# public when listed, redacted (never published, not even counted on the map) when listed as
# sensitive, and left out otherwise.
DEFAULT_PUBLIC_TYPES: dict[str, str] = {
    "09A": "Homicide", "120": "Robbery", "13A": "Aggravated assault", "13B": "Simple assault",
    "220": "Burglary", "23F": "Theft from vehicle", "23H": "Theft", "240": "Vehicle theft",
    "290": "Vandalism", "200": "Arson", "35A": "Drug offence", "520": "Weapon law violation",
    "ROBB": "Robbery", "SHOTS": "Shots fired", "BURG": "Burglary", "MVA": "Traffic crash",
    "DIST": "Disturbance", "SUSP": "Suspicious person",
}
DEFAULT_REDACTED_TYPES: tuple[str, ...] = (
    "11A", "11B", "11C", "11D", "36A", "36B", "64A", "64B",  # sex offences, trafficking
    "DV", "SA", "WELF", "MH",  # CAD: domestic, sexual assault, welfare check, mental health
)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class District(_Model):
    """A police district: a name and its boundary, (lat, lon) vertices, not closed."""

    name: Annotated[str, Field(min_length=1, max_length=100)]
    polygon: Annotated[list[tuple[float, float]], Field(min_length=3, max_length=10_000)]


class TransparencyConfig(_Model):
    delay_hours: Annotated[float, Field(ge=0, le=24 * 365)] = 24.0
    """Hours after it happened before an incident may appear on the public map."""
    window_days: Annotated[int, Field(ge=1, le=3660)] = 90
    """Days of history the map, the metrics and the open data cover."""
    snap: Literal["grid", "block"] = "grid"
    """``grid``: each incident is moved to the centre of its square of ``grid_m`` metres;
    ``block``: the same square of ``grid_m`` metres, labelled with the hundred block of its
    address (``400 block of S 8th St``), never the house number."""
    grid_m: Annotated[float, Field(ge=50, le=5000)] = 200.0
    """Side of the snapping square, metres (police.uk snaps to points covering at least 8
    addresses; 200 m holds many more in a city)."""
    public_types: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_PUBLIC_TYPES))
    """Type code (CAD type or NIBRS offence code) -> the label the public sees."""
    redacted_types: list[str] = Field(default_factory=lambda: list(DEFAULT_REDACTED_TYPES))
    """Codes never published, even when also listed in ``public_types``."""
    districts: list[District] = Field(default_factory=list)
    """Districts the metrics and camera numbers are broken down by."""
    refresh_seconds: Annotated[float, Field(ge=5, le=86400)] = 300.0
    """How often the published data is recomputed."""

    @field_validator("redacted_types")
    @classmethod
    def _upper(cls, value: list[str]) -> list[str]:
        return [code.strip().upper() for code in value]
