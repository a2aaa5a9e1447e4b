"""The controlled vocabularies a DCAT-AP.de record draws on, as far as the hub uses them.

GovData checks every IRI below against its list (`skos:inScheme`): a licence from the
dcat-ap.de licence list, a theme from the EU's data themes, the cities' political
geocoding from the dcat-ap.de regional keys, file types from the EU's file-type list.
Only what the hub can produce is listed here; an administrator's input is checked against
it, so a typo is refused at once instead of failing the portal's harvest later.
"""

from __future__ import annotations

import re

from datahub.domain import NO_LICENCE, City, LicenceClass

LICENCES = "http://dcat-ap.de/def/licenses/"
# The dcat-ap.de licence list (https://www.dcat-ap.de/def/licenses/), by the path after
# LICENCES.
LICENCE_IDS = frozenset(
    {
        "apache",
        "bsd",
        "cc-by",
        "cc-by-de/3.0",
        "cc-by-nc",
        "cc-by-nc-de/3.0",
        "cc-by-nc/4.0",
        "cc-by-nd",
        "cc-by-nd/3.0",
        "cc-by-nd/4.0",
        "cc-by-sa",
        "cc-by-sa-de/3.0",
        "cc-by-sa/4.0",
        "cc-by/4.0",
        "cc-zero",
        "ccpdm/1.0",
        "dl-by-de/1.0",
        "dl-by-de/2.0",
        "dl-by-nc-de/1.0",
        "dl-zero-de/2.0",
        "geoNutz/20131001",
        "geonutz/20130319",
        "gfdl",
        "gpl/3.0",
        "mozilla",
        "odbl",
        "odby",
        "odcpddl",
        "officialWork",
        "other-closed",
        "other-commercial",
        "other-freeware",
        "other-open",
        "other-opensource",
    }
)
# The licence ids datahub's datasets commonly carry (`dataset.licence_id`, compared
# case-insensitively), and their dcat-ap.de entry.
_KNOWN_IDS = {
    "dl-de/by-2-0": "dl-by-de/2.0",
    "dl-de-by-2.0": "dl-by-de/2.0",
    "dl-de/zero-2-0": "dl-zero-de/2.0",
    "dl-de-zero-2.0": "dl-zero-de/2.0",
    "cc-by-4.0": "cc-by/4.0",
    "cc-by-sa-4.0": "cc-by-sa/4.0",
    "cc0-1.0": "cc-zero",
    "odbl-1.0": "odbl",
}
# What a licence outside the list means, by licence class.
_BY_CLASS = {
    LicenceClass.OPEN: "other-open",
    LicenceClass.RESTRICTED: "other-closed",
    LicenceClass.COMMERCIAL: "other-commercial",
}

DATA_THEME = "http://publications.europa.eu/resource/authority/data-theme"
# The EU's data themes (https://op.europa.eu/web/eu-vocabularies/concept-scheme/-/resource?uri=
# http://publications.europa.eu/resource/authority/data-theme).
THEMES = frozenset(
    {
        "AGRI",  # agriculture, fisheries, forestry and food
        "ECON",  # economy and finance
        "EDUC",  # education, culture and sport
        "ENER",  # energy
        "ENVI",  # environment
        "GOVE",  # government and public sector
        "HEAL",  # health
        "INTR",  # international issues
        "JUST",  # justice, legal system and public safety
        "REGI",  # regions and cities
        "SOCI",  # population and society
        "TECH",  # science and technology
        "TRAN",  # transport
    }
)

FILE_TYPE = "http://publications.europa.eu/resource/authority/file-type"
FREQUENCY = "http://publications.europa.eu/resource/authority/frequency"
LANGUAGE = "http://publications.europa.eu/resource/authority/language"
ACCESS_RIGHT = "http://publications.europa.eu/resource/authority/access-right"
MEDIA_TYPE = "https://www.iana.org/assignments/media-types"
HASH_SHA256 = "http://dcat-ap.de/def/hashAlgorithms/sha/256"
CONTRIBUTORS = "http://dcat-ap.de/def/contributors/"
GEOCODING_LEVEL_MUNICIPALITY = "http://dcat-ap.de/def/politicalGeocoding/Level/municipality"
# Each city's Amtlicher Regionalschlüssel in the dcat-ap.de list of regional keys:
# Dortmund is a kreisfreie Stadt (05 NRW, 9 Arnsberg, 13 Dortmund); Schwerte a town of
# the Kreis Unna (05 9 78), municipality 028.
REGIONAL_KEYS = {
    City.DORTMUND: "http://dcat-ap.de/def/politicalGeocoding/regionalKey/059130000000",
    City.SCHWERTE: "http://dcat-ap.de/def/politicalGeocoding/regionalKey/059780028028",
}

_CONTRIBUTOR = re.compile(r"^http://dcat-ap\.de/def/contributors/[A-Za-z0-9_-]+$")
# An address a `mailto:` IRI can carry: no spaces, no angle brackets, one @.
_EMAIL = re.compile(r"^[^@\s<>\"]+@[^@\s<>\"]+\.[^@\s<>\"]+$")


def licence_uri(licence_id: str) -> str | None:
    """Return the dcat-ap.de licence IRI a licence id stands for, or None if it is none."""
    key = licence_id.strip()
    if key.startswith(LICENCES):
        key = key.removeprefix(LICENCES)
    if key in LICENCE_IDS:
        return LICENCES + key
    known = _KNOWN_IDS.get(key.lower())
    return LICENCES + known if known is not None else None


def default_licence_uri(
    licence_id: str, licence_class: LicenceClass, licence_url: str | None = None
) -> str:
    """Return a dataset's dcat-ap.de licence: its URL's or its licence id's, else its class's.

    A dataset without a licence (`none`) grants no one anything: `other-closed`, whatever
    its class.
    """
    if licence_id == NO_LICENCE:
        return LICENCES + "other-closed"
    if licence_url is not None and is_licence_uri(licence_url):
        return licence_url
    return licence_uri(licence_id) or LICENCES + _BY_CLASS[licence_class]


def is_licence_uri(value: str) -> bool:
    """Tell whether `value` is an IRI of the dcat-ap.de licence list."""
    return value.startswith(LICENCES) and value.removeprefix(LICENCES) in LICENCE_IDS


def is_contributor_id(value: str) -> bool:
    """Tell whether `value` has the form of an IRI of the dcat-ap.de contributor list."""
    return _CONTRIBUTOR.fullmatch(value) is not None


def is_email(value: str) -> bool:
    """Tell whether `value` looks like an e-mail address a contact point can carry."""
    return _EMAIL.fullmatch(value) is not None
