"""The day simulator's HTML report (ivr/daysim/html.py) on hand-built summaries: well-formed inline SVG,
numbers formatted as the KPI definitions say, proportional bars, no script or external resource."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import pytest

from ivr.daysim.html import CHART_IDS, render_html, write_html
from ivr.daysim.results import METRICS, DaySummary, Estimate, WaitHistogram
from routing.kpis import NO_QUEUE

HOURS = [f"{h:02d}:00" for h in range(8, 18)]  # 08:00 ... 17:00
QUEUES = ("scheduling", "billing", "nurse_line")
AGENTS = ("ana.lopez", "ben.okafor", "chen.wu", "dana.kim", "eli.stone")
EVIL = "<script>alert(1)</script>"


def est(mean: float | None, half: float | None = None, n: int = 5) -> Estimate:
    """An estimate with a symmetric interval (none when ``half`` is None)."""
    if mean is None:
        return Estimate(None)
    if half is None:
        return Estimate(mean, None, None, min(n, 1))
    return Estimate(mean, mean - half, mean + half, n)


def kpis(offered: float, sl: float | None, occupancy: float | None = None, scale: float = 1.0) -> dict[str, Estimate]:
    """A plausible block of KPIs around ``offered`` calls and service level ``sl``."""
    answered = offered * 0.93
    out = {m: est(0.0, 0.0) for m in METRICS}
    out.update({
        "calls": est(offered * 1.3, 4 * scale), "offered": est(offered, 3 * scale),
        "answered": est(answered, 3 * scale), "abandoned": est(offered - answered, 1.5 * scale),
        "service_level": est(sl, 0.03) if sl is not None else est(None),
        "asa": est(18.4, 2.1), "avg_wait": est(21.0, 2.5), "p90_wait": est(52.0, 6.0),
        "abandonment_rate": est(0.07, 0.01), "aht": est(245.0, 8.0), "containment_rate": est(0.22, 0.02),
        "time_to_person_avg": est(71.0, 4.0), "time_to_person_p90": est(118.0, 9.0),
        "transfers": est(12.4, 2.0), "callbacks": est(6.2, 1.1),
        "occupancy": est(occupancy, 0.04) if occupancy is not None else est(None),
    })
    return out


def realistic(**changes: object) -> DaySummary:
    """3 queues, 2 skills, hours 08:00-17:00, 5 agents, a wait histogram, 5 replications with intervals."""
    hours = {h: kpis(20.0 + 8 * i, 0.70 + 0.02 * i, 0.60 + 0.03 * i) for i, h in enumerate(HOURS)}
    hours["17:00"] = kpis(0.0, None, 0.15)  # staffed, but no call offered: no service level that hour
    answered = tuple([40.0, 55.0, 31.0, 18.0, 9.0, 5.0] + [1.0] * 14 + [0.4])
    abandoned = tuple([3.0, 2.0, 2.0, 1.5, 1.0, 0.5] + [0.2] * 14 + [0.6])
    values: dict[str, object] = {
        "name": "Monday, flu season", "scenario_file": "scenarios/monday.yaml", "tree": "main_menu",
        "date": "2026-11-23", "tz": "America/New_York", "replications": 5, "seed": 42, "level": 0.95,
        "sl_variant": "abandons within T excluded: answered within T / (offered - abandoned within T)",
        "overall": kpis(430.0, 0.8123, 0.78, scale=5), "agents_scheduled": 5, "warmup_minutes": 30.0,
        "groups": {"queue": {q: kpis(140.0 + 10 * i, 0.75 + 0.05 * i) for i, q in enumerate(QUEUES)},
                   "skill": {"spanish": kpis(60.0, 0.66), "clinical": kpis(150.0, 0.85)},
                   "hour_of_day": hours},
        "agents": {a: {"answered": est(70.0 + i, 3.0), "aht": est(240.0 + i, 6.0),
                       "occupancy": est(0.55 + 0.1 * i, 0.03)} for i, a in enumerate(AGENTS)},
        "wait_histogram": WaitHistogram(15.0, answered, abandoned),
        "sl_targets": dict.fromkeys(QUEUES, 0.8), "sl_seconds": dict.fromkeys(QUEUES, 20.0),
        "notes": ("staffing from agents.yaml", "the first 30 minutes are warm-up"),
    }
    values.update(changes)
    return DaySummary(**values)


def degenerate() -> DaySummary:
    """One replication, nothing defined, no groups, no agents, no waits, no targets."""
    return DaySummary(
        name="empty day", scenario_file="s.yaml", tree="t", date="2026-11-23", tz="UTC", replications=1, seed=0,
        level=0.95, sl_variant="strict", overall={m: Estimate(None) for m in METRICS}, groups={}, agents={},
        wait_histogram=WaitHistogram(15.0, (), ()), sl_targets={}, sl_seconds={}, agents_scheduled=0)


def svgs(page: str) -> dict[str, ET.Element]:
    """Every inline <svg> block, parsed as XML (so it must be well-formed), by id."""
    blocks = re.findall(r"<svg\b.*?</svg>", page, flags=re.S)
    assert blocks
    parsed = [ET.fromstring(b) for b in blocks]
    return {el.get("id"): el for el in parsed}


def by_class(svg: ET.Element, cls: str) -> list[ET.Element]:
    return [el for el in svg.iter() if el.get("class") == cls]


def tile(page: str, metric: str) -> tuple[str, str]:
    """(value, interval line) of the headline tile for ``metric``."""
    m = re.search(rf'data-metric="{metric}">.*?class="value">(.*?)</div><div class="ci">(.*?)</div>', page)
    assert m, metric
    return m.group(1), m.group(2)


# ---------------------------------------------------------------------- structure


def test_every_svg_is_well_formed_titled_and_scalable_and_the_charts_are_there():
    page = render_html(realistic())
    charts = svgs(page)
    assert set(CHART_IDS) <= set(charts)
    assert {"chart-waits", "chart-sl-by-hour", "chart-occupancy"} <= set(charts)
    for chart_id, svg in charts.items():
        title = svg.find("title")
        assert title is not None and title.text, chart_id
        assert re.fullmatch(r"0 0 [\d.]+ [\d.]+", svg.get("viewBox", "")), chart_id


def test_page_is_one_html5_document_whose_tags_balance():
    page = render_html(realistic())
    assert page.startswith("<!DOCTYPE html>")
    assert '<meta charset="utf-8">' in page

    class Balance(HTMLParser):
        void = frozenset({"meta", "br", "hr", "img", "input", "link"})

        def __init__(self) -> None:
            super().__init__()
            self.stack: list[str] = []

        def handle_starttag(self, tag, attrs):
            if tag not in self.void:
                self.stack.append(tag)

        def handle_startendtag(self, tag, attrs):
            pass

        def handle_endtag(self, tag):
            assert self.stack and self.stack[-1] == tag, (tag, self.stack[-5:])
            self.stack.pop()

    parser = Balance()
    parser.feed(page)
    assert parser.stack == []


def test_header_names_the_scenario_and_its_settings():
    page = render_html(realistic())
    for text in ("Simulated day: Monday, flu season", "2026-11-23", "America/New_York", "main_menu",
                 "5 independent days", "95 %", "42", "30 min",
                 "abandons within T excluded: answered within T / (offered - abandoned within T)"):
        assert text in page, text
    assert re.search(r"<dt>Agents scheduled</dt><dd>5</dd>", page)
    assert re.search(r"<dt>Seed</dt><dd>42</dd>", page)


# ---------------------------------------------------------------------- numbers


def test_tiles_show_means_in_display_units_with_their_intervals():
    page = render_html(realistic())
    assert tile(page, "service_level") == ("81.2 %", "[78.2–84.2] %")
    assert tile(page, "asa") == ("18.4 s", "[16.3–20.5] s")
    assert tile(page, "abandonment_rate") == ("7.0 %", "[6.0–8.0] %")
    assert tile(page, "occupancy") == ("78.0 %", "[74.0–82.0] %")
    assert tile(page, "offered") == ("430", "[415–445]")
    assert tile(page, "transfers") == ("12.4", "[10.4–14.4]")
    for metric in ("avg_wait", "p90_wait", "aht", "containment_rate", "time_to_person_avg", "callbacks"):
        assert tile(page, metric)[0] != "—", metric
    assert "objective 80 % within 20 s" in page
    assert "p90 118.0 s" in page


def test_tables_show_mean_and_interval_per_queue_skill_hour_and_agent():
    page = render_html(realistic())
    queue_table = re.search(r'<section id="table-queue">(.*?)</section>', page, flags=re.S).group(1)
    for q in QUEUES:
        assert f"<td>{q}</td>" in queue_table
    assert "<td>80 % within 20 s</td>" in queue_table  # the queue's objective
    assert "<td>85.0 % [82.0–88.0]</td>" in queue_table  # nurse_line: 0.85 ± 0.03
    assert "Occupancy" not in queue_table  # not defined per queue (KPIS.md)
    skill_table = re.search(r'<section id="table-skill">(.*?)</section>', page, flags=re.S).group(1)
    assert "<td>spanish</td>" in skill_table and "<td>66.0 % [63.0–69.0]</td>" in skill_table
    hour_table = re.search(r'<section id="table-hour-of-day">(.*?)</section>', page, flags=re.S).group(1)
    assert [h for h in re.findall(r"<td>(\d\d:00)</td>", hour_table)] == HOURS
    assert "Occupancy" in hour_table and "<td>60.0 % [56.0–64.0]</td>" in hour_table
    assert "<td>18.4 s [16.3–20.5]</td>" in hour_table
    agent_table = re.search(r'<section id="table-agents">(.*?)</section>', page, flags=re.S).group(1)
    assert "<td>eli.stone</td>" in agent_table and "<td>95.0 % [92.0–98.0]</td>" in agent_table


def test_calls_that_never_queued_are_the_last_queue_row_with_a_plain_name():
    summary = realistic()
    first = next(iter(summary.groups["queue"].values()))
    summary.groups["queue"] = {NO_QUEUE: first, **summary.groups["queue"]}
    queue_table = re.search(r'<section id="table-queue">(.*?)</section>', render_html(summary), flags=re.S).group(1)
    keys = re.findall(r"<tr><td>([^<]*)</td>", queue_table)
    assert keys[-1] == "IVR only (never queued)" and NO_QUEUE not in keys and keys[:-1] == list(QUEUES)


def test_notes_and_the_definitions_pointer_are_at_the_bottom():
    page = render_html(realistic())
    notes = page.index('<section id="notes">')
    assert page.index("<li>staffing from agents.yaml</li>") > notes
    assert "routing/KPIS.md" in page[notes:]
    assert "<a " not in page  # a link-free pointer


# ---------------------------------------------------------------------- charts


def test_wait_bars_are_proportional_to_the_histogram():
    summary = realistic()
    svg = svgs(render_html(summary))["chart-waits"]
    answered = by_class(svg, "bar-answered")
    abandoned = by_class(svg, "bar-abandoned")
    assert len(answered) == len(abandoned) == 21
    heights = [float(r.get("height")) for r in answered]
    assert heights.index(max(heights)) == 1  # 15-30 s is the largest answered bin
    ratio = heights[1] / summary.wait_histogram.answered[1]
    for h, v in zip(heights, summary.wait_histogram.answered):
        assert h == pytest.approx(v * ratio, abs=0.15)
    # stacked: each abandoned bar sits right on top of its answered bar
    for a, b in zip(answered, abandoned):
        assert float(b.get("y")) + float(b.get("height")) == pytest.approx(float(a.get("y")), abs=0.15)
    labels = [r.find("title").text for r in answered]
    assert labels[0].startswith("0–15 s") and labels[-1].startswith("300 s+")
    assert by_class(svg, "t-line")  # every queue has T = 20 s


def test_no_t_marker_when_the_queues_differ_in_t():
    svg = svgs(render_html(realistic(sl_seconds={"scheduling": 20.0, "billing": 30.0})))["chart-waits"]
    assert not by_class(svg, "t-line")


def test_sl_chart_has_a_target_line_only_when_targets_are_shared():
    shared = render_html(realistic())
    svg = svgs(shared)["chart-sl-by-hour"]
    target = [el for el in svg.iter() if el.get("class") == "target-line"]
    assert len(target) == 1
    points = by_class(svg, "point-sl")
    at_80 = float(target[0].get("y1"))
    # the 08:00 point is at 70 %, below the 80 % target: a larger y in SVG coordinates
    first = next(p for p in points if p.get("data-key") == "08:00")
    assert float(first.get("cy")) > at_80

    differ = render_html(realistic(sl_targets={"scheduling": 0.8, "billing": 0.9, "nurse_line": 0.8}))
    assert not by_class(svgs(differ)["chart-sl-by-hour"], "target-line")
    assert "targets differ by queue" in differ
    assert "targets differ by queue" not in shared


def test_sl_chart_skips_hours_without_a_service_level_and_draws_offered_bars():
    svg = svgs(render_html(realistic()))["chart-sl-by-hour"]
    points = by_class(svg, "point-sl")
    assert [p.get("data-key") for p in points] == HOURS[:-1]  # 17:00 had no offered calls
    ys = [float(p.get("cy")) for p in points]
    assert ys == sorted(ys, reverse=True)  # SL rises through the day: y goes up the page
    assert len(by_class(svg, "ci-sl")) == 3 * len(points)  # a whisker (line and two caps) each
    offered = {r.get("data-key"): float(r.get("height")) for r in by_class(svg, "bar-offered")}
    assert offered["16:00"] > offered["08:00"] > 0
    assert offered["16:00"] / offered["08:00"] == pytest.approx((20 + 8 * 8) / 20, rel=0.01)


def test_occupancy_charts_by_hour_and_by_agent():
    page = render_html(realistic())
    charts = svgs(page)
    hourly = {r.get("data-key"): float(r.get("height")) for r in by_class(charts["chart-occupancy"], "bar-occupancy")}
    assert list(hourly) == HOURS
    assert hourly["16:00"] / hourly["08:00"] == pytest.approx(0.84 / 0.60, rel=0.01)
    assert by_class(charts["chart-occupancy"], "ci-occupancy")
    agents = {r.get("data-key"): float(r.get("width")) for r in by_class(charts["chart-agent-occupancy"], "bar-agent")}
    assert list(agents) == list(AGENTS)
    assert agents["eli.stone"] / agents["ana.lopez"] == pytest.approx(0.95 / 0.55, rel=0.01)


# ---------------------------------------------------------------------- safety


def test_text_from_the_summary_is_escaped_everywhere():
    evil_agent = 'x"><script>alert(2)</script>'
    summary = realistic(
        name=EVIL, tree=EVIL, scenario_file=EVIL, tz=EVIL, sl_variant=EVIL, notes=(EVIL,),
        groups={"queue": {EVIL: kpis(10.0, 0.8)}, "skill": {EVIL: kpis(10.0, 0.8)},
                "hour_of_day": {EVIL: kpis(10.0, 0.8, 0.5)}},
        agents={evil_agent: {"occupancy": est(0.5, 0.1)}},
        sl_targets={EVIL: 0.8}, sl_seconds={EVIL: 20.0},
    )
    page = render_html(summary)
    assert "<script" not in page.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    charts = svgs(page)  # the escaped names keep the SVG well-formed
    assert [r.get("data-key") for r in by_class(charts["chart-agent-occupancy"], "bar-agent")] == [evil_agent]


def test_control_characters_in_names_do_not_break_the_svg():
    page = render_html(realistic(agents={"bad\x01agent": {"occupancy": est(0.5, 0.1)}}))
    assert [r.get("data-key") for r in by_class(svgs(page)["chart-agent-occupancy"], "bar-agent")] == ["badagent"]


def test_page_loads_nothing_from_outside():
    page = render_html(realistic(notes=('see <a href="https://example.org/x">this</a>',)))
    assert not re.search(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", page, flags=re.I)
    assert not re.search(r"@import|url\(|<link|<img|<iframe|<object|<embed", page, flags=re.I)
    assert "<script" not in page.lower()


# ---------------------------------------------------------------------- missing data


def test_degenerate_summary_renders_with_dashes_and_placeholder_charts():
    page = render_html(degenerate())
    charts = svgs(page)
    assert set(CHART_IDS) <= set(charts)
    for chart_id in CHART_IDS:
        assert not any(el.tag == "rect" and el.get("class", "").startswith("bar") for el in charts[chart_id].iter())
    assert tile(page, "service_level") == ("—", "no data")
    assert tile(page, "asa") == ("—", "no data")
    assert "No data for this grouping." in page
    assert "No service-level target is configured." in page
    assert 'id="notes"' not in page


def test_single_replication_shows_means_without_intervals():
    one = {m: Estimate(3.0, None, None, 1) for m in METRICS} | {"service_level": Estimate(0.75, None, None, 1)}
    summary = realistic(replications=1, overall=one,
                        groups={"queue": {"billing": one}, "hour_of_day": {"09:00": one}},
                        agents={"ana.lopez": {"occupancy": Estimate(0.5, None, None, 1)}})
    page = render_html(summary)
    assert tile(page, "service_level") == ("75.0 %", "single replication: no interval")
    assert "<td>75.0 %</td>" in page and "[" not in re.search(r'id="table-queue">.*?</section>', page, re.S).group(0)
    charts = svgs(page)
    assert by_class(charts["chart-sl-by-hour"], "point-sl") and not by_class(charts["chart-sl-by-hour"], "ci-sl")
    assert "No data for this grouping." in page  # skills


def test_partially_defined_metrics_and_missing_groups():
    summary = realistic(groups={"hour_of_day": {"09:00": {"offered": est(5.0, 1.0)}}})
    page = render_html(summary)
    charts = svgs(page)
    assert not by_class(charts["chart-sl-by-hour"], "point-sl")
    assert by_class(charts["chart-sl-by-hour"], "bar-offered")
    assert not by_class(charts["chart-occupancy"], "bar-occupancy")
    assert page.count("No data for this grouping.") == 2  # queue and skill


def test_an_interval_reaching_past_the_feasible_range_is_cut_to_it():
    hours = {"09:00": kpis(10.0, 0.98, 0.97)}
    hours["09:00"]["service_level"] = Estimate(0.98, 0.90, 1.06, 5)
    hours["09:00"]["abandoned"] = Estimate(1.4, -0.1, 2.9, 5)
    page = render_html(realistic(groups={"hour_of_day": hours}))
    assert "<td>98.0 % [90.0–100.0]</td>" in page
    assert "<td>1.4 [0.0–2.9]</td>" in page  # not "[-0.1–2.9]": no day has fewer than 0 abandons
    svg = svgs(page)["chart-sl-by-hour"]
    grid = [float(el.get("y1")) for el in svg.iter("line")
            if el.get("y1") == el.get("y2") and el.get("x1") != el.get("x2") and el.get("class") is None]
    whisker_top = min(float(el.get("y1")) for el in svg.iter("line") if el.get("class") == "ci-sl")
    assert whisker_top == pytest.approx(min(grid))  # stops at the 100 % grid line, not above the plot


def test_counts_print_whole_when_whole_and_mean_and_interval_share_decimals():
    hours = {"09:00": kpis(10.0, 0.8, 0.5)}
    hours["09:00"]["offered"] = Estimate(12.0, 10.0, 14.0, 5)
    hours["09:00"]["answered"] = Estimate(10.5, 9.0, 12.0, 5)
    page = render_html(realistic(groups={"hour_of_day": hours}))
    assert "<td>12 [10–14]</td>" in page
    assert "<td>10.5 [9.0–12.0]</td>" in page


def test_a_kpi_defined_in_only_some_replications_says_so():
    hours = {"09:00": kpis(10.0, 0.8, 0.5)}
    hours["09:00"]["service_level"] = Estimate(0.8, 0.7, 0.9, 3)
    hours["09:00"]["asa"] = Estimate(12.0, None, None, 1)
    overall = kpis(430.0, 0.8) | {"asa": Estimate(12.0, None, None, 1)}
    page = render_html(realistic(groups={"hour_of_day": hours}, overall=overall))
    assert '<td title="defined in 3 of 5 replications">80.0 % [70.0–90.0]</td>' in page
    assert tile(page, "asa") == ("12.0 s", "no interval: defined in 1 of 5 replications")


# ---------------------------------------------------------------------- writing


def test_write_html_round_trips_as_utf8(tmp_path: Path):
    summary = realistic(name="Día de gripe — ñandú")
    out = write_html(summary, tmp_path / "day.html")
    assert out == tmp_path / "day.html"
    assert out.read_bytes() == render_html(summary).encode("utf-8")
    assert "Día de gripe — ñandú" in out.read_text(encoding="utf-8")
    assert isinstance(write_html(summary, str(tmp_path / "again.html")), Path)
