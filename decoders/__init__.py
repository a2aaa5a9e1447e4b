"""The device catalog: one profile per vendor model (decoder, metric mapping, examples).

Pure Python, standard library only; nothing here depends on datahub. Decoders reproduce
the data object of the vendor's codec in The Things Network device repository, refuse
malformed payloads with DecodeError, and are proven by the examples each profile ships.
"""

from __future__ import annotations

from decoders import browan, decentlab, dragino, elsys, milesight, netvox, nwave
from decoders.catalog import (
    DecodeError,
    Example,
    MetricKind,
    MetricMapping,
    Profile,
    UnknownProfile,
)
from decoders.metrics import METRICS, Metric

__all__ = [
    "CATALOG",
    "METRICS",
    "DecodeError",
    "Example",
    "Metric",
    "MetricKind",
    "MetricMapping",
    "Profile",
    "UnknownProfile",
    "get_profile",
]

# The catalog, listed explicitly: a model is in it because it is named here.
CATALOG: dict[str, Profile] = {
    profile.id: profile
    for profile in (
        elsys.ERS_CO2,
        dragino.LHT65,
        dragino.LDDS75,
        dragino.LSN50_V2,
        milesight.EM500_CO2,
        milesight.AM319,
        milesight.VS133,
        milesight.EM300_DI,
        decentlab.DL_PM,
        decentlab.DL_SHT35,
        decentlab.DL_IAM,
        browan.TBMS100,
        netvox.R718A,
        nwave.NPS405,
    )
}


def get_profile(profile_id: str) -> Profile:
    """Return the catalog's profile with this id, or raise UnknownProfile."""
    try:
        return CATALOG[profile_id]
    except KeyError:
        raise UnknownProfile(profile_id) from None
