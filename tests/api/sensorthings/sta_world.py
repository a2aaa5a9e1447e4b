"""A small SensorThings world: two devices with locations (one moved), readings of
several metrics, on the test catalog of api_helpers."""

from __future__ import annotations

import psycopg
from api_helpers import Seed, at

from datahub.domain import City, Location

CLIMATE, LEVEL = "70B3D57E0000C001", "70B3D57E0000C002"
ROOT = "http://testserver/sta/v1.1"


def build(conn: psycopg.Connection, seed: Seed) -> None:
    """Register the devices and store their readings (hourly from T0)."""
    seed.device(CLIMATE, location=Location(51.51, 7.46))
    seed.device(
        LEVEL,
        location=Location(51.43, 7.56),
        city=City.SCHWERTE,
        supplier="stadtwerke-schwerte",
        profile="level",
    )
    seed.readings(CLIMATE, "temperature", {at(hours=h): 10.0 + h for h in range(6)})
    seed.readings(CLIMATE, "co2", {at(hours=h): 400.0 + h for h in range(3)})
    seed.readings(LEVEL, "water_level", {at(hours=h): 1.0 + h / 10 for h in range(5)})
    # The level gauge moved once: a second location, from now on.
    seed.device(
        LEVEL,
        location=Location(51.44, 7.57),
        city=City.SCHWERTE,
        supplier="stadtwerke-schwerte",
        profile="level",
    )
