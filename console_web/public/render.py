"""The public page, rendered on the server from the current snapshot: readable without script;
the script only adds the map."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from html import escape

from rtcc.transparency_config import TransparencyConfig
from transparency.charts import bar_chart
from transparency.metrics import MEASURE_LABELS, MEASURES, MetricRow
from transparency.opendata import INCIDENT_FIELDS, METRIC_FIELDS
from transparency.program import SHARING_LABELS, SHARING_LEVELS
from transparency.routes import BASE
from transparency.service import Snapshot

LIST_LIMIT = 50


def _minutes(seconds: float | None) -> str:
    return "—" if seconds is None else f"{seconds / 60:.1f}"


def _metric_table(caption: str, rows: Sequence[MetricRow], head: str) -> str:
    body = "".join(
        f"<tr><th scope=row>{escape(r.group)}</th><td>{r.count}</td>"
        f"<td>{_minutes(r.median_s)}</td><td>{_minutes(r.p90_s)}</td>"
        f"<td>{r.missing + r.inconsistent}</td></tr>" for r in rows)
    return (f"<table><caption>{escape(caption)}</caption><thead><tr><th scope=col>{head}</th>"
            "<th scope=col>Incidents</th><th scope=col>Median (min)</th>"
            "<th scope=col>90th percentile (min)</th>"
            "<th scope=col>Not counted (time missing or inconsistent)</th></tr></thead>"
            f"<tbody>{body}</tbody></table>")


def _metric_block(snapshot: Snapshot, measure: str, group_by: str, head: str) -> str:
    rows = [r for r in snapshot.metrics if r.measure == measure and r.group_by == group_by]
    label = MEASURE_LABELS[measure]  # type: ignore[index]
    if not rows:
        return f"<p>No incidents yet for {escape(label.lower())}.</p>"
    caption = f"{label}, by {head.lower()}"
    chart = bar_chart(f"c-{measure}-{group_by}", caption, [r.group for r in rows],
                      [("Median", [None if r.median_s is None else r.median_s / 60
                                   for r in rows]),
                       ("90th percentile", [None if r.p90_s is None else r.p90_s / 60
                                            for r in rows])], "min")
    return (f'<div class="pair"><figure>{chart}</figure>'
            f"{_metric_table(caption, rows, head)}</div>")


def _incident_list(snapshot: Snapshot, types: set[str], start: date | None,
                   end: date | None) -> tuple[str, int]:
    shown = [i for i in snapshot.incidents
             if (not types or i.type_code in types)
             and (start is None or date.fromisoformat(i.occurred_hour[:10]) >= start)
             and (end is None or date.fromisoformat(i.occurred_hour[:10]) <= end)]
    rows = "".join(
        f"<tr><td>{escape(i.occurred_hour[:13].replace('T', ' '))}:00</td>"
        f"<td>{escape(i.type_label)}</td><td>{escape(i.block or '')}</td>"
        f"<td>{escape(i.district or '')}</td></tr>" for i in shown[:LIST_LIMIT])
    table = ("<table><caption>Latest published incidents matching the filters "
             f"({min(len(shown), LIST_LIMIT)} of {len(shown)})</caption><thead><tr>"
             "<th scope=col>Hour (UTC)</th><th scope=col>Type</th><th scope=col>Block</th>"
             f"<th scope=col>District</th></tr></thead><tbody>{rows}</tbody></table>")
    return table, len(shown)


def _filters(config: TransparencyConfig, types: set[str], start: date | None,
             end: date | None) -> str:
    labels = sorted({(v, k.upper()) for k, v in config.public_types.items()
                     if k.upper() not in set(config.redacted_types)})
    boxes = "".join(
        f'<label class="check"><input type="checkbox" name="type" value="{escape(code)}"'
        f'{" checked" if code in types else ""}> {escape(label)} ({escape(code)})</label>'
        for label, code in labels)
    return (
        '<form id="filters" method="get" action="/public/"><fieldset><legend>Types</legend>'
        f'<div class="checks">{boxes}</div></fieldset>'
        '<div class="dates"><label>From <input type="date" name="from" '
        f'value="{start.isoformat() if start else ""}"></label>'
        '<label>To <input type="date" name="to" '
        f'value="{end.isoformat() if end else ""}"></label></div>'
        '<button type="submit">Show</button> <a href="/public/">Clear filters</a></form>')


def _program(snapshot: Snapshot) -> str:
    p = snapshot.program
    levels = [SHARING_LABELS[level] for level in SHARING_LEVELS]
    chart = bar_chart("c-cameras", "Registered cameras by sharing level", levels,
                      [("Cameras", [float(p.by_sharing[level]) for level in SHARING_LEVELS])],
                      "")
    sharing = "".join(f"<tr><th scope=row>{escape(SHARING_LABELS[level])}</th>"
                      f"<td>{p.by_sharing[level]}</td></tr>" for level in SHARING_LEVELS)
    district = "".join(f"<tr><th scope=row>{escape(c.district)}</th>"
                       f"<td>{escape(SHARING_LABELS.get(c.sharing, c.sharing))}</td>"
                       f"<td>{c.cameras}</td></tr>" for c in p.by_district)
    if p.activity_available:
        activity = "".join(
            f"<tr><th scope=row>{escape(a.month)}</th><td>{a.footage_requests_made}</td>"
            f"<td>{a.footage_requests_approved}</td><td>{a.live_views_opened}</td></tr>"
            for a in p.activity) or '<tr><td colspan="4">No requests or live views yet.</td></tr>'
    else:
        activity = '<tr><td colspan="4">The audit counts could not be read just now.</td></tr>'
    return (
        f"<p>{p.cameras_total} cameras are registered with the real-time crime center. "
        "Private cameras are counted here, never placed on a map.</p>"
        f'<div class="pair"><figure>{chart}</figure><table><caption>Cameras by sharing level'
        "</caption><thead><tr><th scope=col>Sharing level</th><th scope=col>Cameras</th>"
        f"</tr></thead><tbody>{sharing}</tbody></table></div>"
        "<table><caption>Cameras by district and sharing level</caption><thead><tr>"
        "<th scope=col>District</th><th scope=col>Sharing level</th><th scope=col>Cameras"
        f"</th></tr></thead><tbody>{district}</tbody></table>"
        "<table><caption>How the cameras were used, by month</caption><thead><tr>"
        "<th scope=col>Month</th><th scope=col>Footage requests made</th>"
        "<th scope=col>Footage requests approved by owners</th>"
        "<th scope=col>Live views opened by the RTCC</th></tr></thead>"
        f"<tbody>{activity}</tbody></table>")


def _explanation(snapshot: Snapshot, config: TransparencyConfig) -> str:
    redacted = ", ".join(sorted(config.redacted_types)) or "none"
    return (
        "<ul>"
        f"<li>Incidents appear {config.delay_hours:g} hours after they happen, and for "
        f"{config.window_days} days.</li>"
        f"<li>No incident is shown at its exact place: each is moved to a point of a grid of "
        f"{config.grid_m:g}-metre squares, at least {config.grid_m / 4:g} metres from where it "
        "happened. Addresses are shown only as a hundred block, never a house number.</li>"
        "<li>Times are shown to the hour.</li>"
        "<li>Only the listed types are published. Sensitive types (sexual offences, domestic "
        "violence, welfare and mental-health calls, among them the codes "
        f"{escape(redacted)}) are never shown, to protect victims.</li>"
        f"<li>Of {snapshot.cad_count} calls for service in the window, "
        f"{sum(1 for i in snapshot.incidents if i.source == 'cad')} are shown; the rest are "
        "of unlisted or sensitive types, or too recent. Reported crimes come from the records "
        "system (NIBRS codes).</li>"
        "<li>Response times count every call with both timestamps, whatever its type; calls "
        "missing a timestamp are counted separately, never guessed.</li>"
        "</ul>")


def render_page(snapshot: Snapshot, config: TransparencyConfig, tile_url: str,
                tile_attribution: str, types: set[str], start: date | None,
                end: date | None) -> str:
    incidents, matching = _incident_list(snapshot, types, start, end)
    metrics = []
    for measure in MEASURES:
        metrics.append(f"<h3>{escape(MEASURE_LABELS[measure])}</h3>")
        metrics.append(_metric_block(snapshot, measure, "priority", "Priority"))
    metrics.append("<h3>Response time by district</h3>")
    metrics.append(_metric_block(snapshot, "response", "district", "District"))
    metrics.append("<h3>Response time by month</h3>")
    metrics.append(_metric_block(snapshot, "response", "month", "Month"))
    fields = "".join(f"<tr><th scope=row><code>{escape(k)}</code></th><td>{escape(v)}</td></tr>"
                     for k, v in {**INCIDENT_FIELDS, **METRIC_FIELDS}.items())
    tiles = (f' data-tile-url="{escape(tile_url)}" data-tile-attribution="'
             f'{escape(tile_attribution)}"' if tile_url else "")
    query = "&".join([f"type={escape(t)}" for t in sorted(types)]
                     + ([f"from={start}"] if start else []) + ([f"to={end}"] if end else []))
    geojson = f"{BASE}/incidents.geojson" + (f"?{query}" if query else "")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Crime map and police response</title>
<link rel="stylesheet" href="/public/vendor/leaflet/leaflet.css">
<link rel="stylesheet" href="/public/static/public.css">
<script src="/public/vendor/leaflet/leaflet.js" defer></script>
<script src="/public/static/public.js" defer></script>
</head><body>
<a class="skip" href="#main">Skip to content</a>
<header><h1>Crime map and police response</h1>
<p>Published by the police department. Updated {escape(snapshot.generated_at[:16])} UTC.</p>
<nav aria-label="Sections"><a href="#map-section">Map</a> <a href="#metrics">Response times</a>
<a href="#cameras">Cameras</a> <a href="#about">What is shown</a> <a href="#data">Open data</a>
</nav></header>
<main id="main">
<section id="map-section" aria-labelledby="map-h"><h2 id="map-h">Map of incidents</h2>
{_filters(config, types, start, end)}
<div id="map" role="region" aria-label="Map of {matching} published incidents; the same
incidents are listed in the table below"{tiles} data-geojson="{geojson}"></div>
{incidents}
</section>
<section id="metrics" aria-labelledby="metrics-h"><h2 id="metrics-h">Response times</h2>
<p>Minutes, over the last {config.window_days} days. Priority 1 is the most urgent.</p>
{''.join(metrics)}
</section>
<section id="cameras" aria-labelledby="cameras-h"><h2 id="cameras-h">Cameras in numbers</h2>
{_program(snapshot)}
</section>
<section id="about" aria-labelledby="about-h"><h2 id="about-h">What is and is not shown</h2>
{_explanation(snapshot, config)}
</section>
<section id="data" aria-labelledby="data-h"><h2 id="data-h">Open data</h2>
<p>The same data, free to reuse: <a href="{BASE}/incidents.csv">incidents (CSV)</a>,
<a href="{BASE}/incidents.geojson">incidents (GeoJSON)</a>,
<a href="{BASE}/incidents.json">incidents (JSON)</a>,
<a href="{BASE}/metrics.csv">response times (CSV)</a>,
<a href="{BASE}/metrics.json">response times (JSON)</a>,
<a href="{BASE}/program.json">cameras in numbers (JSON)</a>;
the API is described at <a href="{BASE}/">{BASE}/</a>. Field names stay the same within a
version.</p>
<table><caption>Fields</caption><tbody>{fields}</tbody></table>
</section></main></body></html>
"""
