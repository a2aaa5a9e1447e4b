"""The canonical metrics a reading can have, with SenML/UCUM unit symbols.

Profiles map their vendor fields onto these names (see `MetricMapping`); the unit here
is the one readings are stored in, after the mapping's scale is applied.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Metric:
    """One canonical quantity: its name, unit symbol and meaning."""

    name: str
    unit: str
    description: str


def _metrics(*metrics: Metric) -> dict[str, Metric]:
    return {metric.name: metric for metric in metrics}


METRICS: dict[str, Metric] = _metrics(
    # Climate
    Metric("temperature", "Cel", "Air temperature at the device"),
    Metric("external_temperature", "Cel", "Temperature at an external probe on a cable"),
    Metric("relative_humidity", "%RH", "Relative humidity of the air"),
    Metric("barometric_pressure", "hPa", "Barometric air pressure"),
    Metric("illuminance", "lx", "Illuminance (ambient light)"),
    # Air quality
    Metric("co2", "ppm", "Carbon dioxide concentration"),
    Metric("tvoc", "ppb", "Total volatile organic compounds"),
    Metric("hcho", "mg/m3", "Formaldehyde concentration"),
    Metric("pm1_0", "ug/m3", "Mass concentration of particles up to 1 µm (PM1.0)"),
    Metric("pm2_5", "ug/m3", "Mass concentration of particles up to 2.5 µm (PM2.5)"),
    Metric("pm10", "ug/m3", "Mass concentration of particles up to 10 µm (PM10)"),
    # Presence and counting
    Metric("occupancy", "1", "Occupancy state: 1 occupied, 0 free"),
    Metric("motion_count", "1", "PIR motion events"),
    Metric("people_in", "1", "People who crossed the counting line inwards"),
    Metric("people_out", "1", "People who crossed the counting line outwards"),
    Metric("pulse_count", "1", "Pulses of a meter (water, gas, energy); weight set per device"),
    # Level
    Metric("distance", "mm", "Distance from the sensor to the surface below (fill level)"),
    Metric("fill_level", "%", "Fill level of a container such as a waste bin: 0 empty, 100 full"),
    # Device health
    Metric("battery_voltage", "V", "Battery voltage"),
    Metric("battery", "%", "Battery level"),
)
