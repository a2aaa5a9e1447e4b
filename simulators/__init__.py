"""Simulated LoRaWAN fleets for Dortmund and Schwerte, published as the network servers would.

Typical use: `scenario = load_scenario(DEFAULT_SCENARIO)`; `write_registry_csv(scenario, path)`
for `datahub devices import`; `uplinks = generate(scenario, seed=1, start=..., count=1000)`;
`publish(uplinks, targets_from_settings(settings), rate=50, qos=1)`; or all of it at once,
dated now: `simulate(scenario, settings, count=1000, rate=50)` (the `datahub simulate` command).
"""

from simulators.envelopes import build_message
from simulators.generator import SimUplink, generate
from simulators.publisher import (
    PublishError,
    PublishReport,
    Target,
    publish,
    simulate,
    targets_from_settings,
)
from simulators.scenario import (
    DEFAULT_SCENARIO,
    Scenario,
    ScenarioError,
    SimDevice,
    load_scenario,
    registry_rows,
    write_registry_csv,
)

__all__ = [
    "DEFAULT_SCENARIO",
    "PublishError",
    "PublishReport",
    "Scenario",
    "ScenarioError",
    "SimDevice",
    "SimUplink",
    "Target",
    "build_message",
    "generate",
    "load_scenario",
    "publish",
    "registry_rows",
    "simulate",
    "targets_from_settings",
    "write_registry_csv",
]
