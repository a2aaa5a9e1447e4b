"""The city summary of people counters that are personal (docs/privacy.md), in headless
Chromium against a running API on a database of counters only (dashboard_seed.py).
"""

from __future__ import annotations

from collections.abc import Callable

from dashboard_seed import COUNTING_DEVICES, PERSONAL_COUNTERS, PUBLIC_COUNTERS
from dashboard_stack import Stack, Visit, database_increase
from playwright.sync_api import Locator, expect

from datahub.domain import City


def counted(stack: Stack, shown: Locator, dev_euis: list[str]) -> int:
    """What the counters counted in the window the summary says it shows, from the database."""
    start = shown.get_attribute("data-from") or ""
    end = shown.get_attribute("data-to") or ""
    assert start and end, "the summary does not say which hour it counted"
    return round(
        sum(
            database_increase(stack, dev_eui=eui, metric="people_in", start=start, end=end)
            for eui in dev_euis
        )
    )


def test_a_city_of_k_personal_counters_shows_their_count_and_one_of_fewer_does_not(
    counting_visit: Callable[..., Visit], counting_stack: Stack
) -> None:
    # Dortmund has fewer personal counters than k: the page does not ask for its city-wide
    # series, which the API would withhold (a 403 on the console would fail the visit).
    page = counting_visit().open("#metric=people_in")

    # Schwerte: the city-wide series, over every counter, the personal ones included.
    schwerte = page.locator("#summary article[data-city=schwerte] dd[data-key=count_people_in]")
    expect(schwerte).to_be_visible()
    everyone = [d.dev_eui for d in COUNTING_DEVICES if d.city == City.SCHWERTE]
    total = counted(counting_stack, schwerte, everyone)
    assert total > 0
    assert schwerte.inner_text() == f"{total:,}"

    # Dortmund: the per-device counts, which leave the personal counters out.
    dortmund = page.locator("#summary article[data-city=dortmund] dd[data-key=count_people_in]")
    public = [d.dev_eui for d in PUBLIC_COUNTERS if d.city == City.DORTMUND]
    personal = [d.dev_eui for d in PERSONAL_COUNTERS if d.city == City.DORTMUND]
    assert dortmund.inner_text() == f"{counted(counting_stack, dortmund, public):,}"
    assert counted(counting_stack, dortmund, personal) > 0
    # The map shows no personal counter's count, in either city.
    expect(page.locator("#map path.sensor")).to_have_count(len(COUNTING_DEVICES))
    expect(page.locator("#map path.sensor.is-novalue")).to_have_count(len(PERSONAL_COUNTERS))

    # Each city alone shows the same.
    page.locator("#filter-city").select_option("schwerte")
    expect(page.locator("#summary article")).to_have_count(1)
    expect(schwerte).to_have_text(f"{counted(counting_stack, schwerte, everyone):,}")
    page.locator("#filter-city").select_option("dortmund")
    expect(page.locator("#summary article")).to_have_count(1)
    expect(dortmund).to_have_text(f"{counted(counting_stack, dortmund, public):,}")
