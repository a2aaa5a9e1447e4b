"""The dashboard in headless Chromium against a running API on a seeded TimescaleDB.

Every test fails on a console error (see conftest's `visit`). Screenshots of the main
views are written to tests/artifacts/dashboard/.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest
from dashboard_seed import BAYS, BINS, COUNTER, DEVICES, RESTRICTED_DATASET, RESTRICTED_DEVICES
from dashboard_stack import PHONE, Stack, Visit, database_increase
from playwright.sync_api import Locator, Page, Response, Route, expect

from datahub.storage.buckets import BUCKET_ORIGIN

SILENT = next(d for d in DEVICES if d.silent_for is not None)
SCHWERTE_AIR = next(d for d in DEVICES if d.name == "sw-luft-rathaus")
OCCUPIED_BAY = next(d for d in DEVICES if d.occupied)
RANGE_WORDS = {"24h": "24 h", "7d": "7 days", "30d": "30 days"}
BUCKETS = {"15m": timedelta(minutes=15), "1h": timedelta(hours=1), "1d": timedelta(days=1)}
# A 30-day chart takes the API well under a second here, but the machines are shared: a
# chart gets more time than Playwright's default of 5 s.
CHART_TIMEOUT_MS = 15_000


def shot(page: Page, artifacts: Path, name: str, *, full_page: bool = False) -> None:
    path = artifacts / name
    page.screenshot(path=str(path), full_page=full_page)
    print(f"screenshot: {path}")


def sensors(page: Page, selector: str = "") -> list[str]:
    """The DevEUIs of the sensors drawn on the map (matching an extra class selector)."""
    classes = page.eval_on_selector_all(
        f"#map path.sensor{selector}", "paths => paths.map(p => p.getAttribute('class'))"
    )
    return sorted(re.search(r"sensor-([0-9A-F]{16})", c).group(1) for c in classes)  # type: ignore[union-attr]


def summary(page: Page, city: str) -> dict[str, str]:
    card = page.locator(f"#summary article[data-city={city}]")
    keys = card.locator("dd").evaluate_all("dds => dds.map(d => [d.dataset.key, d.textContent])")
    return dict(keys)


def database_buckets(
    stack: Stack, *, dev_eui: str, metric: str, bucket: str, start: str, end: str
) -> list[tuple[datetime, float]]:
    """The bucket means as the database computes them from the stored readings."""
    with psycopg.connect(stack.database.url) as conn:
        rows = conn.execute(
            """
            SELECT date_bin(%(width)s, r.time, %(origin)s) AS bucket, avg(r.value)
            FROM reading r JOIN device d ON d.id = r.device_id
            WHERE d.dev_eui = %(dev_eui)s AND r.metric = %(metric)s
              AND r.time >= %(start)s AND r.time < %(end)s
            GROUP BY bucket ORDER BY bucket
            """,
            {
                "width": BUCKETS[bucket],
                "origin": BUCKET_ORIGIN,
                "dev_eui": dev_eui,
                "metric": metric,
                "start": datetime.fromisoformat(start),
                "end": datetime.fromisoformat(end),
            },
        ).fetchall()
    return [(time, float(value)) for time, value in rows]


def drawn_chart(page: Page, bucket: str) -> Locator:
    """Wait until the open sensor's chart has loaded; fail with its caption unless drawn.

    A chart is asked for by the click just before, which marks it loading at once (a tap
    may take a moment to become a click: the first chart is waited for to be asked).
    """
    chart = page.locator("#chart")
    expect(chart).to_have_attribute("data-state", re.compile(r"."))
    expect(chart).not_to_have_attribute("data-state", "loading", timeout=CHART_TIMEOUT_MS)
    assert chart.get_attribute("data-state") == "ready", page.locator("#chart-caption").inner_text()
    expect(chart).to_have_attribute("data-bucket", bucket)
    expect(chart.locator("canvas")).to_have_count(1)
    return chart


def chart_points(page: Page) -> list[tuple[datetime, float]]:
    rows = page.eval_on_selector_all(
        "#chart-table tbody tr", "rows => rows.map(r => [r.dataset.time, r.dataset.value])"
    )
    return [(datetime.fromisoformat(t), float(v)) for t, v in rows]


def test_map_shows_the_open_sensors_of_both_cities(
    visit: Callable[..., Visit], stack: Stack, artifacts: Path
) -> None:
    opened = visit()
    calls: list[str] = []
    opened.page.on(
        "request", lambda r: calls.append(urlsplit(r.url).path) if "/v1/" in r.url else None
    )
    page = opened.open()

    # One call per list, however many sensors there are: far below the anonymous rate limit.
    assert sorted(calls) == [
        "/v1/datasets",
        "/v1/devices",
        "/v1/latest",
        "/v1/metrics",
        "/v1/summaries/parking",
        "/v1/summaries/waste",
    ]

    # Temperature is the default metric; every open device's profile reports it.
    assert page.locator("#filter-metric").input_value() == "temperature"
    assert sensors(page) == sorted(stack.seeded.devices)
    assert page.locator("#map path.city-dortmund").count() == 8
    assert page.locator("#map path.city-schwerte").count() == 3
    # Every sensor lies inside the visible map.
    box = page.locator("#map").bounding_box()
    assert box is not None
    for marker in page.locator("#map path.sensor").all():
        mark = marker.bounding_box()
        assert mark is not None
        assert box["x"] <= mark["x"] and mark["x"] + mark["width"] <= box["x"] + box["width"]
        assert box["y"] <= mark["y"] and mark["y"] + mark["height"] <= box["y"] + box["height"]

    # Grey when silent for more than three reporting intervals, coloured otherwise.
    assert sensors(page, ".is-silent") == [SILENT.dev_eui]
    assert page.locator(f".sensor-{SILENT.dev_eui}").get_attribute("fill") == "#9e9e9e"
    online = page.locator(f".sensor-{SCHWERTE_AIR.dev_eui}").get_attribute("fill")
    assert online not in ("#9e9e9e", "#ffffff")
    expect(page.locator(".legend")).to_contain_text("Temperature (°C)")
    expect(page.locator(".legend-silent")).to_be_visible()

    # The summary per city, computed from /v1/devices and /v1/latest.
    dortmund = summary(page, "dortmund")
    assert dortmund["online"] == "8 of 9"
    assert dortmund["free_bays"] == "2 of 3"
    assert dortmund["last_update"] in ("just now", "1 min ago", "2 min ago")
    assert summary(page, "schwerte")["online"] == "3 of 3"
    # Means per placement: indoor and outdoor air are not mixed.
    assert "mean_pm2_5_indoor" in summary(page, "schwerte")
    assert {"mean_temperature_indoor", "mean_temperature_outdoor"} <= set(summary(page, "dortmund"))

    # Each open dataset with its licence and attribution.
    datasets = page.locator("#datasets li")
    assert sorted(datasets.evaluate_all("items => items.map(i => i.dataset.dataset)")) == [
        "klima-dortmund",
        "luft-schwerte",
        "parken-dortmund",
        "passanten-dortmund",
    ]
    schwerte = page.locator("#datasets li[data-dataset=luft-schwerte]")
    expect(schwerte).to_contain_text("Creative Commons Attribution 4.0")
    expect(schwerte).to_contain_text("© Stadtwerke Schwerte GmbH")
    assert (
        schwerte.locator("a").get_attribute("href")
        == "https://creativecommons.org/licenses/by/4.0/"
    )

    # The tiles come from the configured tile URL.
    assert any(hit.startswith("/tiles/") for hit in stack.tile_hits)
    shot(page, artifacts, "map.png")


def test_selecting_a_sensor_draws_its_chart_from_the_database(
    visit: Callable[..., Visit], stack: Stack, artifacts: Path
) -> None:
    page = visit().open()
    page.locator(f"#map path.sensor-{SCHWERTE_AIR.dev_eui}").click()

    detail = page.locator("#detail")
    expect(detail).to_be_visible()
    expect(page.locator("#detail-heading")).to_have_text(SCHWERTE_AIR.name)
    expect(page.locator("#detail-licence")).to_contain_text("Creative Commons Attribution 4.0")
    assert f"sensor={SCHWERTE_AIR.dev_eui}" in page.url

    for range_, bucket, most in (("24h", "15m", 97), ("7d", "1h", 169), ("30d", "1d", 31)):
        page.locator(f"[data-range='{range_}']").click()
        chart = drawn_chart(page, bucket)
        shown = chart_points(page)
        expected = database_buckets(
            stack,
            dev_eui=SCHWERTE_AIR.dev_eui,
            metric="temperature",
            bucket=bucket,
            start=chart.get_attribute("data-from") or "",
            end=chart.get_attribute("data-to") or "",
        )
        # Aggregated on the server: one point per bucket, never the raw readings.
        assert 0 < len(shown) <= most
        assert [t for t, _ in shown] == [t for t, _ in expected]
        assert [v for _, v in shown] == pytest.approx([v for _, v in expected], rel=1e-9)
        if range_ == "24h":
            shot(page, artifacts, "sensor-chart.png")

    page.locator("#detail-close").click()
    expect(detail).to_be_hidden()


def test_filters_narrow_the_map_the_summary_and_the_datasets(
    visit: Callable[..., Visit], stack: Stack, artifacts: Path
) -> None:
    page = visit().open()

    page.locator("#filter-city").select_option("schwerte")
    schwerte = sorted(e for e, d in stack.seeded.devices.items() if d.city == "schwerte")
    expect(page.locator("#map path.sensor")).to_have_count(len(schwerte))
    assert sensors(page) == schwerte
    expect(page.locator("#summary article")).to_have_count(1)
    expect(page.locator("#summary article[data-city=schwerte]")).to_be_visible()

    page.locator("#filter-metric").select_option("pm2_5")
    air = sorted(e for e in schwerte if stack.seeded.devices[e].profile == "milesight-iot/am319")
    expect(page.locator("#map path.sensor")).to_have_count(len(air))
    assert sensors(page) == air
    expect(page.locator(".legend")).to_contain_text("PM2.5 (µg/m³)")
    # The WHO bands are for outdoor air; these sensors are indoors: relative classes.
    expect(page.locator(".legend-relative")).to_be_visible()
    expect(page.locator(".legend-bands")).to_have_count(0)
    assert "city=schwerte" in page.url and "metric=pm2_5" in page.url

    page.locator("#filter-city").select_option("")
    page.locator("#filter-dataset").select_option("parken-dortmund")
    page.locator("#filter-metric").select_option("occupancy")
    bays = sorted(e for e, d in stack.seeded.devices.items() if d.dataset == "parken-dortmund")
    expect(page.locator("#map path.sensor")).to_have_count(len(bays))
    assert sensors(page) == bays
    assert page.locator(f".sensor-{OCCUPIED_BAY.dev_eui}").get_attribute("fill") == "#d73027"
    expect(page.locator(".legend")).to_contain_text("occupied")
    expect(page.locator("#datasets li")).to_have_count(1)
    expect(page.locator("#summary article")).to_have_count(1)
    assert summary(page, "dortmund")["free_bays"] == "2 of 3"
    shot(page, artifacts, "filter-parking.png")

    # The filters are in the address: a reload shows the same view.
    page.reload()
    page.wait_for_selector("body[data-state=ready]")
    assert page.locator("#filter-dataset").input_value() == "parken-dortmund"
    assert sensors(page) == bays


def test_german_labels_by_default_for_a_german_browser(
    visit: Callable[..., Visit], artifacts: Path
) -> None:
    page = visit(locale="de-DE").open()

    assert page.locator("html").get_attribute("lang") == "de"
    expect(page.locator("h1")).to_have_text("Offene Sensordaten")
    expect(page.locator("label:has(#filter-city) span")).to_have_text("Stadt")
    assert summary(page, "dortmund")["online"] == "8 von 9"
    expect(page.locator(".legend")).to_contain_text("Temperatur (°C)")
    shot(page, artifacts, "map-de.png")

    page.locator("[data-lang=en]").click()
    expect(page.locator("h1")).to_have_text("Open sensor data")
    assert summary(page, "dortmund")["online"] == "8 of 9"
    # The choice is kept.
    page.reload()
    page.wait_for_selector("body[data-state=ready]")
    expect(page.locator("h1")).to_have_text("Open sensor data")


def test_usable_on_a_phone(visit: Callable[..., Visit], artifacts: Path) -> None:
    page = visit(phone=True).open()

    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    map_box = page.locator("#map").bounding_box()
    assert map_box is not None and map_box["height"] > 300
    assert map_box["width"] == pytest.approx(PHONE["width"], abs=1)
    for select in ("#filter-city", "#filter-metric", "#filter-dataset"):
        expect(page.locator(select)).to_be_visible()
    shot(page, artifacts, "phone-map.png")

    page.locator(f"#map path.sensor-{SCHWERTE_AIR.dev_eui}").tap()
    drawn_chart(page, "15m")
    # Below the map, and scrolled into view by the tap.
    detail = page.locator("#detail")
    expect(detail).to_be_in_viewport()
    detail_top = detail.evaluate("d => d.getBoundingClientRect().top + scrollY")
    assert detail_top >= map_box["y"] + map_box["height"]
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    shot(page, artifacts, "phone-chart.png")
    shot(page, artifacts, "phone-page.png", full_page=True)


def test_usable_when_the_tiles_cannot_load(visit: Callable[..., Visit], stack: Stack) -> None:
    # Chromium reports each failed tile on the console; those are expected here.
    opened = visit(allow=("/tiles/",))
    opened.page.route(re.compile(r".*/tiles/.*"), lambda route: route.abort())
    page = opened.open()

    expect(page.locator(".map-notice")).to_be_visible()
    assert sensors(page) == sorted(stack.seeded.devices)
    page.locator(f"#map path.sensor-{SCHWERTE_AIR.dev_eui}").click()
    drawn_chart(page, "15m")
    assert opened.console_errors, "the tiles were expected to fail"
    assert all("/tiles/" in error for error in opened.console_errors)


def test_a_rate_limited_call_waits_as_told_and_goes_on(
    visit: Callable[..., Visit], stack: Stack
) -> None:
    # Chromium reports the refused call on the console; that one is expected here.
    opened = visit(allow=("429",))
    calls: list[float] = []

    def refuse_first(route: Route) -> None:
        calls.append(time.monotonic())
        if len(calls) > 1:
            route.continue_()
            return
        route.fulfill(
            status=429,
            headers={"Retry-After": "1"},
            content_type="application/json",
            body=json.dumps({"error": "TooManyRequests", "detail": "over the rate limit"}),
        )

    opened.page.route(re.compile(r".*/v1/latest(\?.*)?$"), refuse_first)
    page = opened.page
    page.goto(f"{stack.url}/")

    expect(page.locator("#status")).to_have_text(
        "Many requests at the moment; trying again in 1 s."
    )
    page.wait_for_selector("body[data-state=ready]", timeout=15_000)
    expect(page.locator("#status")).to_be_hidden()
    assert len(calls) == 2
    assert calls[1] - calls[0] >= 1.0
    assert sensors(page) == sorted(stack.seeded.devices)
    assert summary(page, "dortmund")["online"] == "8 of 9"


def test_restricted_data_never_reaches_the_page(visit: Callable[..., Visit], stack: Stack) -> None:
    opened = visit()
    bodies: list[str] = []

    def keep(response: Response) -> None:
        if "/v1/" in response.url:
            bodies.append(response.text())

    opened.page.on("response", keep)
    page = opened.open()
    # Look everywhere the page could show data: each city, each metric, a chart.
    for city in ("dortmund", "schwerte", ""):
        page.locator("#filter-city").select_option(city)
    for metric in page.locator("#filter-metric option").evaluate_all(
        "options => options.map(o => o.value)"
    ):
        page.locator("#filter-metric").select_option(metric)
    page.locator("#filter-metric").select_option("pm2_5")
    page.locator(f"#map path.sensor-{SCHWERTE_AIR.dev_eui}").click()
    drawn_chart(page, "15m")
    # An address naming a restricted sensor shows nothing of it.
    again = visit()
    again.page.on("response", keep)
    page = again.open(f"#sensor={RESTRICTED_DEVICES[0].dev_eui}&metric=pm2_5")
    expect(page.locator("#detail")).to_be_hidden()
    assert f"sensor={RESTRICTED_DEVICES[0].dev_eui}" not in page.url

    assert len(bodies) >= 5
    seen = "\n".join([*bodies, page.content()])
    secrets = [RESTRICTED_DATASET.slug, RESTRICTED_DATASET.name, RESTRICTED_DATASET.supplier]
    for device in RESTRICTED_DEVICES:
        secrets += [device.dev_eui, device.name]
    assert [s for s in secrets if s.lower() in seen.lower()] == []
    # They are in the database all the same: the API kept them back.
    with psycopg.connect(stack.database.url) as conn:
        (count,) = conn.execute(
            "SELECT count(*) FROM device WHERE dev_eui = ANY(%s)",
            ([d.dev_eui for d in RESTRICTED_DEVICES],),
        ).fetchone() or (0,)
    assert count == len(RESTRICTED_DEVICES)
    assert all(json.loads(b) for b in bodies)


def test_its_use_is_metered_as_anonymous_public_interest_use(
    visit: Callable[..., Visit], stack: Stack
) -> None:
    page = visit().open()
    page.locator(f"#map path.sensor-{SCHWERTE_AIR.dev_eui}").click()
    drawn_chart(page, "15m")

    with psycopg.connect(stack.database.url) as conn:
        rows = conn.execute(
            """
            SELECT u.consumer_id, u.purpose, u.endpoint, ds.slug
            FROM usage u JOIN dataset ds ON ds.id = u.dataset_id
            """
        ).fetchall()
    assert {endpoint for _, _, endpoint, _ in rows} >= {"/v1/latest", "/v1/readings/aggregate"}
    assert {(consumer, purpose) for consumer, purpose, _, _ in rows} == {(None, "public_interest")}
    assert {slug for *_, slug in rows} <= {
        "klima-dortmund",
        "parken-dortmund",
        "luft-schwerte",
        "passanten-dortmund",
        "abfall-dortmund",  # its open summary
        "parken-schwerte",
    }


def labels_fit(page: Page) -> list[tuple[str, float, float]]:
    """Each y-axis label with its drawn width and the room the axis gives it."""
    return page.eval_on_selector(
        "#chart",
        """chart => {
            const ctx = document.createElement("canvas").getContext("2d");
            ctx.font = chart.dataset.yFont;
            const room = Number(chart.dataset.yAxisSize) - Number(chart.dataset.yUnitSize) - 15;
            return JSON.parse(chart.dataset.yLabels).map(
                label => [label, ctx.measureText(label).width, room]);
        }""",
    )


def test_a_people_counter_shows_counts_per_interval_never_its_total(
    visit: Callable[..., Visit], stack: Stack, artifacts: Path
) -> None:
    page = visit().open(f"#metric=people_in&sensor={COUNTER.dev_eui}")

    for range_, bucket in (("24h", "15m"), ("7d", "1h"), ("30d", "1d")):
        page.locator(f"[data-range='{range_}']").click()
        chart = drawn_chart(page, bucket)
        assert chart.get_attribute("data-kind") == "count"
        counts = [v for _, v in chart_points(page)]
        increase = database_increase(
            stack,
            dev_eui=COUNTER.dev_eui,
            metric="people_in",
            start=chart.get_attribute("data-from") or "",
            end=chart.get_attribute("data-to") or "",
        )
        # Counts per interval, which add up to what the counter counted in the range.
        assert sum(counts) == pytest.approx(increase)
        assert max(counts) < 1_400_000 / 10
        assert float(chart.get_attribute("data-total") or 0) == pytest.approx(increase)
        # What it counted in the range, never the running total of over 1.4 million.
        text = page.locator("#detail-latest").inner_text()
        assert f"Counted in the last {RANGE_WORDS[range_]}: {round(increase):,}" in text
        # Every label of the y axis fits beside it, compact for large counts.
        for label, width, room in labels_fit(page):
            assert width <= room, (label, width, room)
            assert len(label) <= 6, label
        if range_ == "30d":
            shot(page, artifacts, "counter-chart.png")
    # The city's summary: what the counters counted in the last hour, not their totals.
    counted = summary(page, "dortmund")["count_people_in"]
    assert 0 < float(counted.replace(",", "")) < 2_000


def test_labels_of_a_temperature_chart_fit_too(visit: Callable[..., Visit]) -> None:
    page = visit(locale="de-DE").open(f"#metric=co2&sensor={SCHWERTE_AIR.dev_eui}")
    drawn_chart(page, "15m")
    fits = labels_fit(page)
    assert fits and all(width <= room for _, width, room in fits)


def test_the_waste_and_parking_summaries_show_districts_of_k_sensors_or_more(
    visit: Callable[..., Visit], stack: Stack, artifacts: Path
) -> None:
    page = visit().open()

    waste = page.locator("#waste li[data-area='Innenstadt-West']")
    full = sum(1 for b in BINS if b.area == "Innenstadt-West" and b.distance < 340)
    expect(waste).to_have_attribute("data-shown", "true")
    expect(waste).to_contain_text(f"5 bins, {round(100 * full / 5)}% above 80 % full")
    hidden = page.locator("#waste li[data-area='Hörde']")
    expect(hidden).to_have_attribute("data-shown", "false")
    expect(hidden).to_contain_text("fewer than 5 sensors: not shown")
    expect(page.locator("#waste-source")).to_contain_text("Entsorgung Dortmund GmbH")

    zone = page.locator("#parking li[data-area='Bahnhof']")
    bays = [b for b in BAYS if b.area == "Bahnhof"]
    free = sum(1 for b in bays if not b.occupied)
    expect(zone).to_contain_text(f"{free} of {len(bays)} bays free now")
    hours = json.loads(zone.locator("svg").get_attribute("data-hours") or "[]")
    assert len(hours) == 24 and all(b == len(bays) for _, _, b in hours)
    ruhrtal = page.locator("#parking li[data-area='Ruhrtal']")
    expect(ruhrtal).to_have_attribute("data-shown", "false")
    expect(ruhrtal.locator("svg")).to_have_count(0)
    # Nothing tells of one bin or one bay.
    seen = page.content()
    assert not any(d.dev_eui in seen or d.name in seen for d in (*BINS, *BAYS))
    page.locator("#filter-city").select_option("schwerte")
    expect(page.locator("#waste li")).to_have_text(["No figures for the chosen city."])
    shot(page, artifacts, "summaries.png", full_page=True)


def test_legend_colours_differ_from_no_value_yet(visit: Callable[..., Visit]) -> None:
    # Humidity: the climate sensors have values, the indoor air sensors none yet.
    page = visit().open("#metric=relative_humidity")

    novalue = page.locator("#map path.is-novalue").first
    expect(novalue).to_be_visible()
    assert novalue.evaluate("p => getComputedStyle(p).fillOpacity") == "0"
    assert novalue.evaluate("p => getComputedStyle(p).strokeDasharray") != "none"
    swatches = page.locator(".legend .legend-row:not(.legend-novalue) .swatch").evaluate_all(
        "boxes => boxes.map(b => getComputedStyle(b).backgroundColor)"
    )
    assert swatches
    for colour in swatches:
        red, green, blue = (int(c) for c in re.findall(r"\d+", colour)[:3])
        luminance = (0.2126 * red + 0.7152 * green + 0.0722 * blue) / 255
        assert luminance < 0.9, colour  # nothing a reader could take for white
    style = page.locator(".legend-novalue .swatch").evaluate(
        "b => [getComputedStyle(b).borderStyle, getComputedStyle(b).backgroundColor]"
    )
    assert style == ["dashed", "rgba(0, 0, 0, 0)"]


def test_the_language_can_be_chosen_by_the_address(visit: Callable[..., Visit]) -> None:
    page = visit(locale="en-GB").open("?lang=de")
    expect(page.locator("h1")).to_have_text("Offene Sensordaten")
    assert page.locator("html").get_attribute("lang") == "de"
    page.locator("[data-lang=en]").click()
    expect(page.locator("h1")).to_have_text("Open sensor data")
    assert "lang=en" in page.url
