"""The day simulator's HTML report: one self-contained page to open after a simulated day.

:func:`render_html` reads nothing but the :class:`~ivr.daysim.results.DaySummary`, the same data the
terminal table and the CSV/JSON show, so the page never disagrees with them. The page is one file
with no external scripts, fonts, stylesheets or images: a manager opens it from a laptop, mails it
or archives it next to the scenario, and it must look the same offline and years later.

The charts are inline SVG drawn by the small helpers below, not by matplotlib or plotly: three bar
and line charts do not justify a heavy plotting dependency, and SVG scales with the page (every
chart has a ``viewBox``) and keeps its text searchable.

Every string that comes from the summary (scenario, tree, queue, skill and agent names, notes) goes
through :func:`_esc`: a scenario file is user input, and the page must never run what it contains.

What the numbers mean is defined in ``routing/KPIS.md``: rates are 0..1 fractions (shown here as
percentages), times are in seconds, and every KPI is a mean over replications with a Student-t
confidence interval (none with a single replication).
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ivr.daysim.results import DaySummary, Estimate
from routing.kpis import NO_QUEUE

IVR_ONLY = "IVR only (never queued)"  # the queue table's row for NO_QUEUE

__all__ = ["CHART_IDS", "render_html", "write_html"]

CHART_IDS = ("chart-waits", "chart-sl-by-hour", "chart-occupancy", "chart-agent-occupancy")
DASH = "—"  # a KPI no replication defined (e.g. a service level with no calls offered): not 0

RATE_METRICS = frozenset({"service_level", "service_level_strict", "abandonment_rate", "containment_rate",
                          "occupancy"})
TIME_METRICS = frozenset({"asa", "avg_wait", "p90_wait", "max_wait", "avg_talk", "avg_wrap_up", "aht",
                          "time_to_person_avg", "time_to_person_p90"})

TILES: tuple[tuple[str, str], ...] = (
    ("offered", "Calls offered"), ("service_level", "Service level"), ("asa", "ASA"),
    ("avg_wait", "Average wait"), ("p90_wait", "90th-percentile wait"), ("abandonment_rate", "Abandonment"),
    ("aht", "AHT"), ("occupancy", "Occupancy"), ("containment_rate", "IVR containment"),
    ("time_to_person_avg", "Time to a person"), ("transfers", "Transfers"), ("callbacks", "Callbacks"),
)
TABLE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("offered", "Offered"), ("answered", "Answered"), ("abandoned", "Abandoned"), ("service_level", "Service level"),
    ("asa", "ASA"), ("avg_wait", "Avg wait"), ("p90_wait", "P90 wait"), ("abandonment_rate", "Abandonment"),
    ("aht", "AHT"), ("occupancy", "Occupancy"),
)
AGENT_COLUMNS: tuple[tuple[str, str], ...] = (("answered", "Answered"), ("aht", "AHT"), ("occupancy", "Occupancy"))

# A neutral palette that stays readable in greyscale print; colours are presentation attributes on the
# SVG elements themselves, so a chart copied out of the page keeps them.
INK, MUTED, GRID = "#1f2933", "#616e7c", "#e4e7eb"
ANSWERED, ABANDONED, OFFERED = "#3b6e99", "#d98a3d", "#d3dde8"
SL_LINE, OCCUPANCY, TARGET = "#1f4e79", "#4f8a6b", "#a23b3b"

HALO = {"stroke": "#fff", "stroke_width": 3, "paint_order": "stroke"}  # keeps a label readable over bars
_XML_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")

STYLE = """
body{margin:0;background:#f5f7fa;color:#1f2933;
 font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
main{max-width:1100px;margin:0 auto;padding:24px}
h1{font-size:1.6em;margin:0 0 .4em}
h2{font-size:1.2em;margin:1.8em 0 .6em;padding-bottom:.2em;border-bottom:1px solid #d9e2ec}
h3{font-size:1em;margin:1.2em 0 .4em}
dl.meta{display:grid;grid-template-columns:max-content 1fr;gap:2px 16px;margin:0}
dl.meta dt{color:#616e7c}
dl.meta dd{margin:0}
.tiles{display:grid;grid-template-columns:repeat(auto-fill,minmax(165px,1fr));gap:12px}
.tile{background:#fff;border:1px solid #d9e2ec;border-radius:8px;padding:10px 12px}
.tile .label,.tile .ci,.tile .hint{color:#616e7c;font-size:.8em}
.tile .value{font-size:1.55em;font-weight:600;font-variant-numeric:tabular-nums}
figure{background:#fff;border:1px solid #d9e2ec;border-radius:8px;margin:0 0 16px;padding:12px}
figcaption{color:#616e7c;font-size:.85em;margin-top:6px}
svg.chart{display:block;width:100%;height:auto}
svg.chart text{font-family:inherit}
.table-wrap{overflow-x:auto}
table{border-collapse:collapse;width:100%;background:#fff;font-size:.85em;font-variant-numeric:tabular-nums}
th,td{padding:4px 8px;border-bottom:1px solid #e4e7eb;text-align:right;white-space:nowrap}
th{background:#f0f4f8;font-weight:600}
th:first-child,td:first-child{text-align:left}
p.none,footer{color:#616e7c;font-size:.85em}
footer{margin-top:2.5em}
@media print{body{background:#fff}figure,.tile{break-inside:avoid}}
"""


# ====================================================================== text


def _esc(text: object) -> str:
    """Escape summary text for HTML and for the inline SVG (which tests and browsers parse as XML).

    ``html.escape`` covers markup and quotes; control characters are dropped as well because XML
    forbids them, and one stray byte in a queue name would otherwise make a chart unparseable.
    """
    return html.escape(_XML_FORBIDDEN.sub("", str(text)), quote=True)


def _clean(x: float) -> float:
    """Turn -0.0 into 0.0, so an interval of all-zero replications does not print as "-0.0"."""
    return x + 0.0


def _decimals(metric: str, *xs: float) -> int:
    """Decimals for values shown together (a mean and its interval), so they read alike.

    Counts are means over replications and fractional in general; when all of them are whole (one
    replication, or every replication equal) they print without decimals. Rates and times keep one.
    """
    whole = all(abs(x - round(x)) < 1e-9 for x in xs)
    return 0 if whole and metric not in RATE_METRICS and metric not in TIME_METRICS else 1


def _plain(metric: str, x: float, decimals: int = 1) -> str:
    """A value in the metric's display unit, without the unit: rates in percent, times in seconds, counts."""
    value = 100.0 * x if metric in RATE_METRICS else x
    return f"{_clean(round(value, decimals)):,.{decimals}f}"


def _unit(metric: str) -> str:
    """The unit suffix (with its space, as in "81.2 %") that follows a value of ``metric``."""
    return " %" if metric in RATE_METRICS else " s" if metric in TIME_METRICS else ""


def _feasible(metric: str, low: float, high: float) -> tuple[float, float]:
    """The interval cut to the values the KPI can take: a Student-t interval is symmetric and can reach
    below 0 calls or above 100 %, which a manager would read as a bug (the CSV/JSON keep the raw bounds)."""
    return max(0.0, low), (min(1.0, high) if metric in RATE_METRICS else high)


def _parts(metric: str, e: Estimate | None) -> tuple[str, str]:
    """(mean with unit, "[low–high]" or "") of an estimate, with the same decimals; ("—", "") when undefined."""
    if e is None or e.mean is None:
        return DASH, ""
    if e.low is None or e.high is None:
        return _plain(metric, e.mean, _decimals(metric, e.mean)) + _unit(metric), ""
    low, high = _feasible(metric, e.low, e.high)
    d = _decimals(metric, e.mean, low, high)
    return _plain(metric, e.mean, d) + _unit(metric), f"[{_plain(metric, low, d)}–{_plain(metric, high, d)}]"


def fmt_value(metric: str, x: float | None) -> str:
    """One value with its unit ("81.2 %", "23.4 s", "812"), or "—" when it is undefined."""
    return _parts(metric, Estimate(x))[0]


def fmt_estimate(metric: str, e: Estimate | None) -> str:
    """A table cell: "mean [low–high]" ("81.2 % [79.0–83.4]"), the mean alone without an interval, or "—"."""
    mean, ci = _parts(metric, e)
    return f"{mean} {ci}" if ci else mean


def _metric(metrics: Mapping[str, Estimate] | None, name: str) -> Estimate:
    """``metrics[name]``, or an empty estimate: a summary may lack a metric or a whole group."""
    return (metrics or {}).get(name) or Estimate(None)


def _shared(values: Mapping[str, float]) -> float | None:
    """The one value every queue shares (a service-level target or T), or None when they differ or none is set."""
    distinct = set(values.values())
    return distinct.pop() if len(distinct) == 1 else None


def _objective(target: float | None, seconds: float | None) -> str:
    """A service-level objective as managers say it: "80 % within 20 s" (either part may be unknown)."""
    if target is None and seconds is None:
        return ""
    if target is None:
        return f"within {seconds:g} s"
    return f"{100 * target:g} %" + (f" within {seconds:g} s" if seconds is not None else "")


# ====================================================================== SVG building blocks


@dataclass(frozen=True)
class _Frame:
    """A chart's viewBox size and the margins around its plot area, so every chart maps values the same way."""

    width: float = 720.0
    height: float = 300.0
    left: float = 56.0
    right: float = 24.0
    top: float = 34.0
    bottom: float = 52.0

    @property
    def x0(self) -> float:
        return self.left

    @property
    def x1(self) -> float:
        return self.width - self.right

    @property
    def y0(self) -> float:
        """The plot's bottom edge (value 0)."""
        return self.height - self.bottom

    @property
    def plot_w(self) -> float:
        return self.x1 - self.x0

    @property
    def plot_h(self) -> float:
        return self.y0 - self.top

    def y(self, value: float, top_value: float) -> float:
        """The y coordinate of ``value`` on a 0..``top_value`` axis, clamped to the plot (an interval of a
        rate can reach past 0 or 100 %, and must not be drawn over the axis labels)."""
        frac = min(1.0, max(0.0, value / top_value)) if top_value > 0 else 0.0
        return self.y0 - frac * self.plot_h


def _n(x: float) -> str:
    """A coordinate for an SVG attribute: 0.1 user unit is finer than any screen needs."""
    return f"{_clean(round(x, 1)):g}"


def _attrs(**attrs: object) -> str:
    """Attributes in source order; a trailing underscore avoids Python keywords (``class_``), and other
    underscores become hyphens (``stroke_width`` -> ``stroke-width``)."""
    return "".join(f' {k.rstrip("_").replace("_", "-")}="{_esc(v)}"' for k, v in attrs.items() if v is not None)


def _rect(x: float, y: float, w: float, h: float, tip: str = "", **attrs: object) -> str:
    """A bar; ``tip`` becomes its <title>, the hover text that names the bar and its exact value."""
    body = f"<title>{_esc(tip)}</title>" if tip else ""
    size = f'width="{_n(max(0.0, w))}" height="{_n(max(0.0, h))}"'
    return f'<rect x="{_n(x)}" y="{_n(y)}" {size}{_attrs(**attrs)}>{body}</rect>'


def _line(x1: float, y1: float, x2: float, y2: float, **attrs: object) -> str:
    return f'<line x1="{_n(x1)}" y1="{_n(y1)}" x2="{_n(x2)}" y2="{_n(y2)}"{_attrs(**attrs)}/>'


def _text(x: float, y: float, text: str, size: float = 11, anchor: str = "middle", fill: str = MUTED,
          **attrs: object) -> str:
    """A label; ``text`` is escaped here, so callers can pass summary strings as they are."""
    return (f'<text x="{_n(x)}" y="{_n(y)}" font-size="{size:g}" text-anchor="{anchor}" fill="{fill}"'
            f"{_attrs(**attrs)}>{_esc(text)}</text>")


def _svg(chart_id: str, title: str, desc: str, frame: _Frame, body: Sequence[str]) -> str:
    """The chart element: a viewBox so it scales, and a <title>/<desc> that screen readers announce."""
    return (f'<svg id="{chart_id}" class="chart" viewBox="0 0 {_n(frame.width)} {_n(frame.height)}" role="img" '
            f'aria-labelledby="{chart_id}-title {chart_id}-desc">'
            f'<title id="{chart_id}-title">{_esc(title)}</title><desc id="{chart_id}-desc">{_esc(desc)}</desc>'
            + "".join(body) + "</svg>")


def _nice_scale(vmax: float, intervals: int = 5) -> tuple[float, float]:
    """(top, step) of an axis from 0 that covers ``vmax`` in round steps (1, 2, 2.5 or 5 times a power of 10),
    so tick labels read as 0, 50, 100 rather than 0, 47.3, 94.6."""
    if vmax <= 0 or not math.isfinite(vmax):
        return 1.0, 0.2
    raw = vmax / intervals
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw - 1e-12)
    return step * math.ceil(vmax / step - 1e-9), step


def _ticks(top: float, step: float) -> list[float]:
    return [i * step for i in range(round(top / step) + 1)]


def _y_axis(frame: _Frame, top: float, step: float, label: str, fmt: Callable[[float], str],
            side: str = "left", grid: bool = True) -> list[str]:
    """Tick labels, light grid lines and a rotated axis title on one side of the plot."""
    out: list[str] = []
    right = side == "right"
    x_tick = frame.x1 + 6 if right else frame.x0 - 6
    for v in _ticks(top, step):
        y = frame.y(v, top)
        if grid:
            out.append(_line(frame.x0, y, frame.x1, y, stroke=GRID, stroke_width=1))
        out.append(_text(x_tick, y + 4, fmt(v), anchor="start" if right else "end"))
    x_label = frame.width - 8 if right else 14
    y_mid = frame.top + frame.plot_h / 2
    out.append(_text(x_label, y_mid, label, transform=f"rotate(-90 {_n(x_label)} {_n(y_mid)})"))
    return out


def _x_axis(frame: _Frame, labels: Sequence[tuple[float, str]], title: str) -> list[str]:
    """The baseline, tick marks with labels at the given x positions, and the axis title below."""
    out = [_line(frame.x0, frame.y0, frame.x1, frame.y0, stroke=INK, stroke_width=1)]
    for x, text in labels:
        out.append(_line(x, frame.y0, x, frame.y0 + 4, stroke=INK, stroke_width=1))
        out.append(_text(x, frame.y0 + 17, text))
    out.append(_text(frame.x0 + frame.plot_w / 2, frame.height - 10, title, size=12))
    return out


def _legend(frame: _Frame, items: Sequence[tuple[str, str]]) -> list[str]:
    """Colour swatches with names along the top edge: a chart must be readable without the caption."""
    out: list[str] = []
    x = frame.x0
    for colour, name in items:
        out.append(_rect(x, 10, 12, 12, fill=colour))
        out.append(_text(x + 17, 20, name, anchor="start", fill=INK))
        x += 30 + 6.5 * len(name)
    return out


def _whisker(x: float, y_low: float, y_high: float, cap: float = 4.0, **attrs: object) -> list[str]:
    """A confidence-interval error bar: a vertical line with short caps."""
    style = {"stroke": INK, "stroke_width": 1.2, **attrs}
    return [_line(x, y_low, x, y_high, **style), _line(x - cap, y_low, x + cap, y_low, **style),
            _line(x - cap, y_high, x + cap, y_high, **style)]


def _empty_chart(chart_id: str, title: str, message: str) -> str:
    """A short chart that says what is missing instead of drawing axes over nothing; it keeps its id, so the
    page has the same charts whatever the summary holds."""
    frame = _Frame(height=70.0)
    return _svg(chart_id, title, message, frame, [_text(frame.width / 2, 40, message, size=14)])


def _pct_tick(v: float) -> str:
    return f"{v:g} %"


def _every(count: int, most: int) -> int:
    """Label every k-th category so at most ``most`` labels share the axis."""
    return max(1, math.ceil(count / most))


# ====================================================================== charts


def _bin_label(i: int, bins: int, width: float) -> str:
    """ "0–15 s" for a closed bin, "300 s+" for the open-ended last bin."""
    lo = i * width
    return f"{lo:g} s+" if i == bins - 1 else f"{lo:g}–{lo + width:g} s"


def _wait_tick_every(bins: int, width: float, most: int = 8) -> int:
    """Bins between labelled ticks, so the labelled edges fall on round seconds (every 60 s for 15 s bins)."""
    for seconds in (1, 2, 5, 10, 15, 20, 30, 60, 120, 180, 300, 600, 900, 1800, 3600):
        k = seconds / width
        if k >= 1 and abs(k - round(k)) < 1e-9 and bins / round(k) <= most:
            return round(k)
    return _every(bins, most)


def chart_waits(summary: DaySummary) -> str:
    """Queue waits as stacked bars per bin (answered below, abandoned on top), mean callers per replication.

    The shape shows what one service-level number hides: a long tail, or abandons bunched just after T.
    When the queues share one T, a dashed line marks it.
    """
    hist, frame = summary.wait_histogram, _Frame()
    bins = max(len(hist.answered), len(hist.abandoned))
    answered = [hist.answered[i] if i < len(hist.answered) else 0.0 for i in range(bins)]
    abandoned = [hist.abandoned[i] if i < len(hist.abandoned) else 0.0 for i in range(bins)]
    title = "Wait distribution of offered calls"
    if not bins or not any(a + b > 0 for a, b in zip(answered, abandoned)):
        return _empty_chart("chart-waits", title, "No call waited in a queue.")
    top, step = _nice_scale(max(a + b for a, b in zip(answered, abandoned)))
    slot = frame.plot_w / bins
    body = _y_axis(frame, top, step, "callers per day", lambda v: f"{v:g}")
    for i, (a, b) in enumerate(zip(answered, abandoned)):
        x, label = frame.x0 + i * slot + slot * 0.1, _bin_label(i, bins, hist.bin_seconds)
        y_a = frame.y(a, top)
        y_b = frame.y(a + b, top)
        body.append(_rect(x, y_a, slot * 0.8, frame.y0 - y_a, f"{label}: {a:.1f} answered", fill=ANSWERED,
                          class_="bar-answered", data_bin=i, data_value=f"{a:g}"))
        body.append(_rect(x, y_b, slot * 0.8, y_a - y_b, f"{label}: {b:.1f} abandoned", fill=ABANDONED,
                          class_="bar-abandoned", data_bin=i, data_value=f"{b:g}"))
    k = _wait_tick_every(bins, hist.bin_seconds)
    ticks = [(frame.x0 + i * slot, f"{i * hist.bin_seconds:g}" + ("+" if i == bins - 1 else ""))
             for i in range(0, bins, k)]
    body += _x_axis(frame, ticks, "wait in queue (s)")
    body += _t_marker(frame, summary, slot, bins)
    body += _legend(frame, [(ANSWERED, "answered"), (ABANDONED, "abandoned")])
    desc = (f"Stacked bars of answered and abandoned callers in {hist.bin_seconds:g}-second bins of queue wait, "
            f"the last bin {_bin_label(bins - 1, bins, hist.bin_seconds)}; mean per replication.")
    return _svg("chart-waits", title, desc, frame, body)


def _t_marker(frame: _Frame, summary: DaySummary, slot: float, bins: int) -> list[str]:
    """The shared service-level threshold T as a dashed vertical line on the wait axis (none when T differs)."""
    t = _shared(summary.sl_seconds)
    width = summary.wait_histogram.bin_seconds
    if t is None or width <= 0 or t >= (bins - 1) * width:
        return []
    x = frame.x0 + t / width * slot
    return [_line(x, frame.top, x, frame.y0, stroke=TARGET, stroke_width=1.5, stroke_dasharray="5 4",
                  class_="t-line"),
            _text(x + 4, frame.top + 10, f"T = {t:g} s", anchor="start", fill=TARGET, **HALO)]


def _hours(summary: DaySummary) -> list[tuple[str, Mapping[str, Estimate]]]:
    """The hour-of-day rows in clock order ("08:00" < "09:00" as text too)."""
    return sorted((summary.groups.get("hour_of_day") or {}).items())


def chart_sl_by_hour(summary: DaySummary) -> str:
    """Service level per hour (points, line and CI whiskers, 0–100 %) over the offered calls (light bars,
    right axis), with a dashed target line when the queues share one target.

    Load and service level on one chart, because an hour that misses the target is explained (or not)
    by how many calls came in that hour.
    """
    frame, hours = _Frame(right=60.0), _hours(summary)
    title = "Service level and offered calls by hour"
    if not hours:
        return _empty_chart("chart-sl-by-hour", title, "No hourly data.")
    band = frame.plot_w / len(hours)
    centres = [frame.x0 + band * (i + 0.5) for i in range(len(hours))]
    body = _y_axis(frame, 100.0, 20.0, "service level (%)", _pct_tick)
    body += _offered_bars(frame, hours, centres, band)
    body += _target_line(frame, summary)
    body += _sl_points(frame, hours, centres)
    k = _every(len(hours), 12)
    body += _x_axis(frame, [(centres[i], hours[i][0]) for i in range(0, len(hours), k)], "hour of day")
    body += _legend(frame, [(SL_LINE, "service level"), (OFFERED, "offered calls")])
    desc = ("Service level per hour of day, mean over replications with confidence-interval whiskers, "
            "drawn over bars of the calls offered in each hour.")
    return _svg("chart-sl-by-hour", title, desc, frame, body)


def _offered_bars(frame: _Frame, hours: Sequence[tuple[str, Mapping[str, Estimate]]],
                  centres: Sequence[float], band: float) -> list[str]:
    """Offered calls per hour as light bars on their own right-hand axis (the grid belongs to the % axis)."""
    offered = [_metric(m, "offered").mean for _, m in hours]
    top, step = _nice_scale(max((o for o in offered if o is not None), default=0.0))
    out = _y_axis(frame, top, step, "offered calls", lambda v: f"{v:g}", side="right", grid=False)
    for (hour, _), x, o in zip(hours, centres, offered):
        if o is None:
            continue
        y = frame.y(o, top)
        out.append(_rect(x - band * 0.35, y, band * 0.7, frame.y0 - y, f"{hour}: {fmt_value('offered', o)} offered",
                         fill=OFFERED, class_="bar-offered", data_key=hour, data_value=f"{o:g}"))
    return out


def _target_line(frame: _Frame, summary: DaySummary) -> list[str]:
    """The dashed service-level target, only when every queue has the same one (a mixed target has no line)."""
    target = _shared(summary.sl_targets)
    if target is None:
        return []
    y = frame.y(100 * target, 100.0)
    return [_line(frame.x0, y, frame.x1, y, stroke=TARGET, stroke_width=1.5, stroke_dasharray="6 4",
                  id="sl-target", class_="target-line"),
            _text(frame.x1 - 4, y - 5, f"target {100 * target:g} %", anchor="end", fill=TARGET, **HALO)]


def _sl_points(frame: _Frame, hours: Sequence[tuple[str, Mapping[str, Estimate]]],
               centres: Sequence[float]) -> list[str]:
    """Service-level points joined hour to hour, broken at hours without one (no calls offered is not 0 %)."""
    out: list[str] = []
    runs: list[list[tuple[float, float]]] = [[]]
    for (hour, metrics), x in zip(hours, centres):
        e = _metric(metrics, "service_level")
        if e.mean is None:
            runs.append([])
            continue
        y = frame.y(100 * e.mean, 100.0)
        runs[-1].append((x, y))
        if e.low is not None and e.high is not None:
            out += _whisker(x, frame.y(100 * e.low, 100.0), frame.y(100 * e.high, 100.0), class_="ci-sl")
        tip = f"{hour}: service level {fmt_estimate('service_level', e)}"
        out.append(f'<circle cx="{_n(x)}" cy="{_n(y)}" r="3.5" fill="{SL_LINE}" class="point-sl" '
                   f'data-key="{_esc(hour)}" data-value="{e.mean:g}"><title>{_esc(tip)}</title></circle>')
    lines = [f'<polyline points="{" ".join(f"{_n(x)},{_n(y)}" for x, y in run)}" fill="none" '
             f'stroke="{SL_LINE}" stroke-width="2" class="line-sl"/>' for run in runs if len(run) > 1]
    return lines + out


def chart_occupancy(summary: DaySummary) -> str:
    """Agent occupancy per hour as bars with CI whiskers (0–100 %): where the day runs agents hot or idle."""
    frame, hours = _Frame(), _hours(summary)
    title = "Agent occupancy by hour"
    values = [(h, _metric(m, "occupancy")) for h, m in hours]
    if not any(e.mean is not None for _, e in values):
        return _empty_chart("chart-occupancy", title, "No agent time was recorded.")
    band = frame.plot_w / len(values)
    body = _y_axis(frame, 100.0, 20.0, "occupancy (%)", _pct_tick)
    for i, (hour, e) in enumerate(values):
        if e.mean is None:
            continue
        x = frame.x0 + band * (i + 0.5)
        y = frame.y(100 * e.mean, 100.0)
        body.append(_rect(x - band * 0.35, y, band * 0.7, frame.y0 - y,
                          f"{hour}: occupancy {fmt_estimate('occupancy', e)}", fill=OCCUPANCY,
                          class_="bar-occupancy", data_key=hour, data_value=f"{e.mean:g}"))
        if e.low is not None and e.high is not None:
            body += _whisker(x, frame.y(100 * e.low, 100.0), frame.y(100 * e.high, 100.0), class_="ci-occupancy")
    k = _every(len(values), 12)
    body += _x_axis(frame, [(frame.x0 + band * (i + 0.5), values[i][0]) for i in range(0, len(values), k)],
                    "hour of day")
    desc = "Agent occupancy (busy ÷ staffed time) per hour of day, mean over replications with CI whiskers."
    return _svg("chart-occupancy", title, desc, frame, body)


def _short(name: str, most: int = 20) -> str:
    """A label that fits the agent column; the full name stays in the bar's <title>."""
    return name if len(name) <= most else name[: most - 1] + "…"


def chart_agent_occupancy(summary: DaySummary) -> str:
    """One horizontal bar per agent (occupancy, with CI whisker): who carried the day and who sat idle."""
    agents = list(summary.agents.items())
    row = 22.0
    frame = _Frame(height=max(120.0, 12 + row * len(agents) + 40), left=150.0, right=70.0, top=12.0, bottom=40.0)
    title = "Occupancy per agent"
    if not agents:
        return _empty_chart("chart-agent-occupancy", title, "No agents in this summary.")
    body: list[str] = []
    for v in _ticks(100.0, 20.0):
        x = frame.x0 + frame.plot_w * v / 100
        body += [_line(x, frame.top, x, frame.y0, stroke=GRID, stroke_width=1), _text(x, frame.y0 + 16, f"{v:g} %")]
    for i, (agent, metrics) in enumerate(agents):
        body += _agent_bar(frame, i, row, agent, _metric(metrics, "occupancy"))
    body.append(_text(frame.x0 + frame.plot_w / 2, frame.height - 4, "occupancy (%)", size=12))
    desc = "Occupancy (busy ÷ staffed time) of each agent over the day, mean over replications."
    return _svg("chart-agent-occupancy", title, desc, frame, body)


def _agent_bar(frame: _Frame, i: int, row: float, agent: str, e: Estimate) -> list[str]:
    """One agent's row: name, bar, whisker and the value in words ("—" for an agent never staffed)."""
    y_mid = frame.top + row * (i + 0.5)
    out = [_text(frame.x0 - 8, y_mid + 4, _short(agent), anchor="end", fill=INK)]
    if e.mean is None:
        return out + [_text(frame.x0 + 6, y_mid + 4, DASH, anchor="start")]

    def x_at(v: float) -> float:
        return frame.x0 + frame.plot_w * min(1.0, max(0.0, v))

    out.append(_rect(frame.x0, y_mid - row * 0.35, x_at(e.mean) - frame.x0, row * 0.7,
                     f"{agent}: occupancy {fmt_estimate('occupancy', e)}", fill=OCCUPANCY,
                     class_="bar-agent", data_key=agent, data_value=f"{e.mean:g}"))
    if e.low is not None and e.high is not None:
        lo, hi = x_at(e.low), x_at(e.high)
        out += [_line(lo, y_mid, hi, y_mid, stroke=INK, stroke_width=1.2),
                _line(lo, y_mid - 4, lo, y_mid + 4, stroke=INK, stroke_width=1.2),
                _line(hi, y_mid - 4, hi, y_mid + 4, stroke=INK, stroke_width=1.2)]
    out.append(_text(frame.x1 + 6, y_mid + 4, fmt_value("occupancy", e.mean), anchor="start", fill=INK))
    return out


# ====================================================================== page sections


def _plural(n: int, word: str) -> str:
    """ "1 replication", "5 replications"."""
    return f"{n} {word}{'' if n == 1 else 's'}"


def _header(summary: DaySummary) -> str:
    """What was simulated, so a printed page still says which scenario, day and settings it shows."""
    s = summary
    level = f"{100 * s.level:g} %"
    rows = [
        ("Date", s.date), ("Time zone", s.tz), ("Call tree", s.tree), ("Scenario file", s.scenario_file),
        ("Replications", f"{_plural(s.replications, 'independent day')}"), ("Confidence level", level),
        ("Agents scheduled", s.agents_scheduled), ("Seed", s.seed), ("Warm-up", f"{s.warmup_minutes:g} min"),
        ("Service level", s.sl_variant),
    ]
    items = "".join(f"<dt>{_esc(k)}</dt><dd>{_esc(v)}</dd>" for k, v in rows)
    return f'<header><h1>Simulated day: {_esc(s.name)}</h1><dl class="meta">{items}</dl></header>'


def _tile(metric: str, label: str, e: Estimate, replications: int, hint: str = "") -> str:
    """One headline KPI: the mean large, the interval small under it, or why there is none."""
    mean, ci = _parts(metric, e)
    if e.mean is None:
        ci = "no data"
    elif ci:
        ci += _unit(metric)
    else:
        ci = ("single replication: no interval" if replications <= 1
              else f"no interval: defined in {e.n} of {replications} replications")
    extra = f'<div class="hint">{_esc(hint)}</div>' if hint else ""
    return (f'<div class="tile" data-metric="{_esc(metric)}"><div class="label">{_esc(label)}</div>'
            f'<div class="value">{_esc(mean)}</div><div class="ci">{_esc(ci)}</div>{extra}</div>')


def _tiles(summary: DaySummary) -> str:
    """The overall KPIs a manager looks at first, each as mean and confidence interval."""
    objective = _objective(_shared(summary.sl_targets), _shared(summary.sl_seconds))
    hints = {"service_level": f"objective {objective}" if objective else "",
             "time_to_person_avg": _p90_hint(summary)}
    tiles = "".join(_tile(m, label, _metric(summary.overall, m), summary.replications, hints.get(m, ""))
                    for m, label in TILES)
    note = (f"Mean over {_plural(summary.replications, 'replication')}; under it the {100 * summary.level:g} % "
            "confidence interval [low–high].")
    return (f'<section id="kpis"><h2>Headline KPIs</h2><p class="none">{_esc(note)}</p>'
            f'<div class="tiles">{tiles}</div></section>')


def _p90_hint(summary: DaySummary) -> str:
    """The 90th-percentile time to a person, next to its mean: the mean alone hides the slow calls."""
    p90 = _metric(summary.overall, "time_to_person_p90").mean
    return f"p90 {fmt_value('time_to_person_p90', p90)}" if p90 is not None else ""


def _figure(svg: str, caption: str) -> str:
    return f"<figure>{svg}<figcaption>{_esc(caption)}</figcaption></figure>"


def _sl_caption(summary: DaySummary) -> str:
    """Says what the SL chart shows, which T it uses, and what its target line is or why it has none."""
    t, target = _shared(summary.sl_seconds), _shared(summary.sl_targets)
    within = (f"answered within {t:g} s" if t is not None
              else "T differs by queue" if summary.sl_seconds else "answered within T")
    parts = [(f"Service level ({within}) per hour with {100 * summary.level:g} % CI whiskers; light bars are "
              "offered calls (right axis).")]
    if target is not None:
        parts.append(f"Dashed line: target {100 * target:g} %.")
    elif summary.sl_targets:
        parts.append("No target line: targets differ by queue (see the queue table).")
    else:
        parts.append("No service-level target is configured.")
    parts.append("Hours without offered calls have no service level and no point.")
    return " ".join(parts)


def _charts(summary: DaySummary) -> str:
    """The three charts (occupancy has an hourly and a per-agent part), each with a caption in words."""
    waits = ("Queue wait of every offered call, answered and abandoned, as mean callers per replication. "
             f"Bins of {summary.wait_histogram.bin_seconds:g} s; the last bin is open-ended.")
    occupancy = "Occupancy is busy time (on a call or in wrap-up) over staffed time; whiskers are the CI."
    return (f'<section id="charts"><h2>Charts</h2>{_figure(chart_waits(summary), waits)}'
            f"{_figure(chart_sl_by_hour(summary), _sl_caption(summary))}"
            f"{_figure(chart_occupancy(summary) + chart_agent_occupancy(summary), occupancy)}</section>")


def _table(rows: Sequence[tuple[str, Mapping[str, Estimate]]], columns: Sequence[tuple[str, str]],
           key_label: str, replications: int, extra: tuple[str, Callable[[str], str]] | None = None) -> str:
    """A KPI table, one row per key, each cell "mean [low–high]"; a cell whose KPI was undefined in some
    replications says so in its tooltip, since its mean is over fewer days."""
    head = "".join(f"<th>{_esc(h)}</th>" for h in [key_label] + ([extra[0]] if extra else []) + [c for _, c in columns])
    body = []
    for key, metrics in rows:
        cells = [f"<td>{_esc(key)}</td>"] + ([f"<td>{_esc(extra[1](key))}</td>"] if extra else [])
        for m, _ in columns:
            e = _metric(metrics, m)
            tip = f' title="defined in {e.n} of {replications} replications"' if 0 < e.n < replications else ""
            cells.append(f"<td{tip}>{_esc(fmt_estimate(m, e))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f'<div class="table-wrap"><table><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'


def _columns_present(rows: Sequence[tuple[str, Mapping[str, Estimate]]]) -> list[tuple[str, str]]:
    """The table columns, without occupancy where no row has one (it is not defined per queue or skill)."""
    has_occ = any(_metric(m, "occupancy").mean is not None for _, m in rows)
    return [c for c in TABLE_COLUMNS if c[0] != "occupancy" or has_occ]


def _group_section(summary: DaySummary, grouping: str, heading: str, key_label: str) -> str:
    """One grouping's table, or a line saying the summary has none (skills need the queue configuration)."""
    keyed = summary.groups.get(grouping) or {}
    rows = sorted(keyed.items()) if grouping == "hour_of_day" else list(keyed.items())
    if grouping == "queue":  # calls that never reached a queue: last, and named for a manager, not a programmer
        rows = [r for r in rows if r[0] != NO_QUEUE] + [(IVR_ONLY, m) for k, m in rows if k == NO_QUEUE]
    section_id = f"table-{grouping.replace('_', '-')}"
    if not rows:
        return (f'<section id="{section_id}"><h3>{_esc(heading)}</h3>'
                '<p class="none">No data for this grouping.</p></section>')
    extra = None
    if grouping == "queue" and (summary.sl_targets or summary.sl_seconds):
        extra = ("SL objective",
                 lambda q: _objective(summary.sl_targets.get(q), summary.sl_seconds.get(q)) or DASH)
    table = _table(rows, _columns_present(rows), key_label, summary.replications, extra)
    return f'<section id="{section_id}"><h3>{_esc(heading)}</h3>{table}</section>'


def _tables(summary: DaySummary) -> str:
    """Per queue, per skill, per hour and per agent: the detail behind the tiles and charts."""
    parts = [_group_section(summary, "queue", "By queue", "Queue"),
             _group_section(summary, "skill", "By skill", "Skill"),
             _group_section(summary, "hour_of_day", "By hour of day", "Hour")]
    agents = list(summary.agents.items())
    agent_table = (_table(agents, AGENT_COLUMNS, "Agent", summary.replications) if agents
                   else '<p class="none">No agents in this summary.</p>')
    parts.append(f'<section id="table-agents"><h3>By agent</h3>{agent_table}</section>')
    return '<section id="tables"><h2>Tables</h2>' + "".join(parts) + "</section>"


def _footer(summary: DaySummary) -> str:
    """The notes the simulator left (skipped groupings, warnings), and where the KPIs are defined."""
    notes = "".join(f"<li>{_esc(n)}</li>" for n in summary.notes)
    block = f'<section id="notes"><h2>Notes</h2><ul>{notes}</ul></section>' if notes else ""
    return (f"{block}<footer><p>KPI definitions (formulas, numerators and denominators, which service-level "
            "variant) are in routing/KPIS.md of the IVR repository. Rates are shown as percentages, "
            "times in seconds.</p></footer>")


# ====================================================================== public


def render_html(summary: DaySummary) -> str:
    """The whole report as one self-contained HTML5 page (inline CSS and SVG, no scripts, no external files)."""
    title = f"Simulated day: {summary.name} ({summary.date})"
    return ("<!DOCTYPE html>\n"
            '<html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{_esc(title)}</title><style>{STYLE}</style></head>"
            f"<body><main>{_header(summary)}{_tiles(summary)}{_charts(summary)}{_tables(summary)}"
            f"{_footer(summary)}</main></body></html>\n")


def write_html(summary: DaySummary, path: str | Path) -> Path:
    """Write :func:`render_html` to ``path`` as UTF-8 (the page declares that charset) and return the path."""
    out = Path(path)
    out.write_text(render_html(summary), encoding="utf-8")
    return out
