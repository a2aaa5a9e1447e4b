"""Reading the Prometheus text format in tests: samples by `name{labels}`, and totals."""

from __future__ import annotations


def parse_samples(text: str) -> dict[str, float]:
    """Return the samples of a text exposition, by `name{labels}` as written."""
    samples: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


def total(samples: dict[str, float], name: str) -> float:
    """Sum a metric over all its label sets."""
    return sum(v for k, v in samples.items() if k == name or k.startswith(name + "{"))
