"""The open-data catalogue as DCAT-AP.de 2.0: one graph, served as Turtle, JSON-LD or RDF/XML.

A `dcat:Catalog` published by the hub lists one `dcat:Dataset` per open dataset and per
restricted or commercial one its supplier lets be listed. A dataset's publisher is its
supplier; its spatial coverage is the political geocoding (regional keys) of its devices'
cities; its temporal coverage the span of its readings. Each way to get it is a
`dcat:Distribution`: the REST API, the SensorThings API when the hub serves one, and, for
open datasets, the bulk files (each month file, and the day files of the months without
one yet), each with its licence from the dcat-ap.de list, attribution text, size and
SHA-256.

IRIs: the catalogue is `{base}/v1/catalogue`; everything it describes has a fragment of
it (`#dataset-do-stadtklima`, `#supplier-edg`), so an IRI leads to the document that
describes it, and stays the same as long as the slugs and the base URL do.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from urllib.parse import quote

from rdflib import BNode, Graph, Literal, Namespace, URIRef
from rdflib.namespace import DCAT, DCTERMS, FOAF, RDF, XSD

from datahub.config import OpenDataSettings
from datahub.domain import NO_LICENCE, City, LicenceClass
from datahub.opendata import vocabularies as voc
from datahub.opendata.bulk import file_url as bulk_files_url
from datahub.storage.bulk_files import BulkFile
from datahub.storage.datasets import DatasetRecord
from datahub.storage.dcat import DatasetFacts

DCATDE = Namespace("http://dcat-ap.de/def/dcatde/")
SPDX = Namespace("http://spdx.org/rdf/terms#")
VCARD = Namespace("http://www.w3.org/2006/vcard/ns#")
CATALOGUE_PATH = "/v1/catalogue"
CITY_NAMES = {City.DORTMUND: "Dortmund", City.SCHWERTE: "Schwerte"}


class RdfFormat(StrEnum):
    """A serialisation of the catalogue, by its `format=` name."""

    TURTLE = "ttl"
    JSONLD = "jsonld"
    RDFXML = "rdf"

    @property
    def media_type(self) -> str:
        return _MEDIA_TYPES[self]


_MEDIA_TYPES = {
    RdfFormat.TURTLE: "text/turtle",
    RdfFormat.JSONLD: "application/ld+json",
    RdfFormat.RDFXML: "application/rdf+xml",
}
_RDFLIB_NAMES = {RdfFormat.TURTLE: "turtle", RdfFormat.JSONLD: "json-ld", RdfFormat.RDFXML: "xml"}
# The prefixes of the Turtle and the JSON-LD context: short names a reader knows.
PREFIXES = {
    "dcat": DCAT,
    "dct": DCTERMS,
    "dcatde": DCATDE,
    "foaf": FOAF,
    "vcard": VCARD,
    "spdx": SPDX,
    "xsd": XSD,
}


@dataclass(frozen=True, slots=True)
class Entry:
    """One dataset of the catalogue, with what it takes to describe it."""

    dataset: DatasetRecord
    facts: DatasetFacts
    files: Sequence[BulkFile] = ()


def build_catalogue(
    entries: Sequence[Entry],
    *,
    settings: OpenDataSettings,
    base_url: str,
    sensorthings: bool,
    now: datetime,
) -> Graph:
    """Describe the datasets as one DCAT-AP.de catalogue."""
    base = base_url.rstrip("/")
    builder = _Builder(settings=settings, base=base, sensorthings=sensorthings)
    return builder.catalogue(entries, now=now)


def serialize(graph: Graph, fmt: RdfFormat) -> bytes:
    """Render the graph in one of the three serialisations, UTF-8."""
    if fmt is RdfFormat.JSONLD:
        context = {prefix: str(namespace) for prefix, namespace in PREFIXES.items()}
        return graph.serialize(format="json-ld", context=context, auto_compact=True).encode()
    return graph.serialize(format=_RDFLIB_NAMES[fmt], encoding="utf-8")


class _Builder:
    def __init__(self, *, settings: OpenDataSettings, base: str, sensorthings: bool) -> None:
        self.settings = settings
        self.base = base
        self.iri = base + CATALOGUE_PATH
        self.sensorthings = sensorthings
        self.graph = Graph()
        for prefix, namespace in PREFIXES.items():
            self.graph.bind(prefix, namespace)

    def node(self, fragment: str) -> URIRef:
        return URIRef(f"{self.iri}#{quote(fragment, safe='-._~')}")

    def add(self, subject: URIRef | BNode, predicate: URIRef, obj: object) -> None:
        self.graph.add((subject, predicate, obj))  # type: ignore[arg-type]

    def texts(self, subject: URIRef | BNode, predicate: URIRef, de: str, en: str | None) -> None:
        self.add(subject, predicate, Literal(de, lang="de"))
        if en:
            self.add(subject, predicate, Literal(en, lang="en"))

    def time(self, value: datetime) -> Literal:
        return Literal(value, datatype=XSD.dateTime)

    def catalogue(self, entries: Sequence[Entry], *, now: datetime) -> Graph:
        catalogue = URIRef(self.iri)
        s = self.settings
        self.add(catalogue, RDF.type, DCAT.Catalog)
        self.texts(catalogue, DCTERMS.title, s.title_de, s.title_en)
        self.texts(catalogue, DCTERMS.description, s.description_de, s.description_en)
        self.add(catalogue, DCTERMS.publisher, self.agent("publisher", s.publisher))
        self.add(catalogue, FOAF.homepage, URIRef(self.base + "/"))
        self.add(catalogue, DCAT.themeTaxonomy, URIRef(voc.DATA_THEME))
        for language in ("DEU", "ENG"):
            self.add(catalogue, DCTERMS.language, URIRef(f"{voc.LANGUAGE}/{language}"))
        modified = max((self.modified(e) for e in entries), default=now)
        self.add(catalogue, DCTERMS.modified, self.time(modified))
        for entry in entries:
            self.add(catalogue, DCAT.dataset, self.dataset(entry))
        return self.graph

    def agent(self, fragment: str, name: str) -> URIRef:
        agent = self.node(fragment)
        self.add(agent, RDF.type, FOAF.Agent)
        # DCAT-AP.de asks for foaf:Agent; naming the subclass as well needs no reasoner.
        self.add(agent, RDF.type, FOAF.Organization)
        self.add(agent, FOAF.name, Literal(name))
        return agent

    def modified(self, entry: Entry) -> datetime:
        times = [entry.dataset.updated_at, *(f.written_at for f in entry.files)]
        if entry.facts.last_reading is not None:
            times.append(entry.facts.last_reading)
        return max(times)

    def dataset(self, entry: Entry) -> URIRef:
        record, facts, meta = entry.dataset, entry.facts, entry.dataset.metadata
        s = self.settings
        dataset = self.node(f"dataset-{record.slug}")
        cities = [City(c) for c in facts.cities]
        where = " und ".join(CITY_NAMES[c] for c in cities) or "Dortmund und Schwerte"
        where_en = " and ".join(CITY_NAMES[c] for c in cities) or "Dortmund and Schwerte"
        self.add(dataset, RDF.type, DCAT.Dataset)
        self.add(dataset, DCTERMS.identifier, Literal(str(dataset)))
        self.texts(dataset, DCTERMS.title, record.name, meta.title_en)
        self.texts(
            dataset,
            DCTERMS.description,
            meta.description_de
            or f"{record.name}: Messwerte von LoRaWAN-Sensoren in {where}, "
            f"bereitgestellt von {facts.supplier_name}.",
            meta.description_en
            or f"{meta.title_en or record.name}: readings of LoRaWAN sensors in {where_en}, "
            f"supplied by {facts.supplier_name}.",
        )
        for keyword in meta.keywords:
            self.add(dataset, DCAT.keyword, Literal(keyword, lang="de"))
        for theme in meta.themes:
            self.add(dataset, DCAT.theme, URIRef(f"{voc.DATA_THEME}/{theme}"))
        self.add(
            dataset,
            DCTERMS.publisher,
            self.agent(f"supplier-{record.supplier_slug}", facts.supplier_name),
        )
        self.add(dataset, DCAT.contactPoint, self.contact(meta.contact_name, meta.contact_email))
        self.add(dataset, DCATDE.contributorID, URIRef(meta.contributor_id or s.contributor_id))
        self.add(dataset, DCTERMS.issued, self.time(record.created_at))
        self.add(dataset, DCTERMS.modified, self.time(self.modified(entry)))
        self.add(dataset, DCTERMS.accrualPeriodicity, URIRef(f"{voc.FREQUENCY}/CONT"))
        self.add(dataset, DCAT.landingPage, URIRef(f"{self.base}/#dataset={record.slug}"))
        if cities:
            self.add(
                dataset, DCATDE.politicalGeocodingLevelURI, URIRef(voc.GEOCODING_LEVEL_MUNICIPALITY)
            )
        for city in cities:
            key = URIRef(voc.REGIONAL_KEYS[city])
            self.add(dataset, DCTERMS.spatial, key)
            self.add(dataset, DCATDE.politicalGeocodingURI, key)
        if facts.first_reading is not None and facts.last_reading is not None:
            period = BNode()
            self.add(period, RDF.type, DCTERMS.PeriodOfTime)
            self.add(period, DCAT.startDate, self.time(facts.first_reading))
            self.add(period, DCAT.endDate, self.time(facts.last_reading))
            self.add(dataset, DCTERMS.temporal, period)
        licence_class = LicenceClass(record.licence_class)
        if licence_class is LicenceClass.OPEN:
            self.add(dataset, DCTERMS.accessRights, URIRef(f"{voc.ACCESS_RIGHT}/PUBLIC"))
        else:
            self.add(dataset, DCTERMS.accessRights, Literal(self.access(entry), lang="de"))
        for distribution in self.distributions(entry):
            self.add(dataset, DCAT.distribution, distribution)
        return dataset

    def contact(self, name: str | None, email: str | None) -> BNode:
        contact = BNode()
        self.add(contact, RDF.type, VCARD.Organization)
        self.add(contact, RDF.type, VCARD.Kind)
        self.add(contact, VCARD.fn, Literal(name or self.settings.contact_name))
        self.add(contact, VCARD.hasEmail, URIRef(f"mailto:{email or self.settings.contact_email}"))
        return contact

    def access(self, entry: Entry) -> str:
        """Say how to get access to a dataset that is not open."""
        email = entry.dataset.metadata.contact_email or self.settings.contact_email
        paid = " gegen Entgelt" if entry.dataset.licence_class == LicenceClass.COMMERCIAL else ""
        return (
            f"Eingeschränkt: Nutzung nur mit Freigabe des Datengebers "
            f"({entry.facts.supplier_name}){paid}, über die REST-API mit einem API-Schlüssel. "
            f"Anfragen an {email}. {self.licence_text(entry.dataset)}"
        )

    @staticmethod
    def licence_text(record: DatasetRecord) -> str:
        """Name a dataset's licence in German, or say plainly that there is none."""
        if record.licence_id == NO_LICENCE:
            return "Keine Lizenz angegeben (no licence given)."
        return f"Lizenz: {record.licence_name}."

    def distributions(self, entry: Entry) -> list[URIRef]:
        record = entry.dataset
        slug = record.slug
        made = [
            self.distribution(
                entry,
                f"dataset-{slug}-api",
                title=("REST-API (JSON, CSV)", "REST API (JSON, CSV)"),
                description=(
                    "Sensoren des Datensatzes; ihre Messwerte unter "
                    "/v1/devices/{dev_eui}/readings und /v1/readings/aggregate, beschrieben "
                    f"unter {self.base}/docs.",
                    "The dataset's sensors; their readings at /v1/devices/{dev_eui}/readings "
                    f"and /v1/readings/aggregate, documented at {self.base}/docs.",
                ),
                access=f"{self.base}/v1/devices?dataset={slug}",
                file_type="JSON",
                media_type="application/json",
            )
        ]
        if self.sensorthings:
            made.append(
                self.distribution(
                    entry,
                    f"dataset-{slug}-sensorthings",
                    title=("OGC SensorThings API 1.1", "OGC SensorThings API 1.1"),
                    description=(
                        "Die Sensoren und Messwerte als Things, Datastreams und Observations.",
                        "The sensors and readings as Things, Datastreams and Observations.",
                    ),
                    access=f"{self.base}/sta/v1.1",
                    file_type="JSON",
                    media_type="application/json",
                )
            )
        if record.licence_class == LicenceClass.OPEN:
            made.extend(self.file(entry, f) for f in entry.files)
        return made

    def distribution(
        self,
        entry: Entry,
        fragment: str,
        *,
        title: tuple[str, str],
        description: tuple[str, str],
        access: str,
        file_type: str,
        media_type: str,
    ) -> URIRef:
        record = entry.dataset
        distribution = self.node(fragment)
        self.add(distribution, RDF.type, DCAT.Distribution)
        self.texts(distribution, DCTERMS.title, *title)
        self.texts(distribution, DCTERMS.description, *description)
        self.add(distribution, DCAT.accessURL, URIRef(access))
        self.add(distribution, DCTERMS.format, URIRef(f"{voc.FILE_TYPE}/{file_type}"))
        self.add(distribution, DCAT.mediaType, URIRef(f"{voc.MEDIA_TYPE}/{media_type}"))
        licence = record.metadata.licence_uri or voc.default_licence_uri(
            record.licence_id, LicenceClass(record.licence_class), record.licence_url
        )
        self.add(distribution, DCTERMS.license, URIRef(licence))
        self.add(distribution, DCATDE.licenseAttributionByText, Literal(record.attribution))
        return distribution

    def file(self, entry: Entry, bulk: BulkFile) -> URIRef:
        url = bulk_files_url(self.base, entry.dataset.slug, bulk.period)
        unit = ("Monat", "month") if bulk.is_month else ("Tag", "day")
        distribution = self.distribution(
            entry,
            f"dataset-{entry.dataset.slug}-{bulk.period}",
            title=(
                f"Messwerte {bulk.period} (CSV, gzip)",
                f"Readings {bulk.period} (CSV, gzip)",
            ),
            description=(
                f"Alle Messwerte eines {unit[0]}s (UTC), {bulk.rows} Zeilen, Version "
                f"{bulk.version}.",
                f"Every reading of one {unit[1]} (UTC), {bulk.rows} rows, version {bulk.version}.",
            ),
            access=url,
            file_type="CSV",
            media_type="text/csv",
        )
        self.add(distribution, DCAT.downloadURL, URIRef(url))
        self.add(distribution, DCAT.compressFormat, URIRef(f"{voc.MEDIA_TYPE}/application/gzip"))
        # DCAT-AP 2 types it xsd:decimal (DCAT 2 says nonNegativeInteger; portals follow DCAT-AP).
        self.add(distribution, DCAT.byteSize, Literal(bulk.bytes, datatype=XSD.decimal))
        self.add(distribution, DCTERMS.modified, self.time(bulk.written_at))
        checksum = BNode()
        self.add(checksum, RDF.type, SPDX.Checksum)
        self.add(checksum, SPDX.algorithm, URIRef(voc.HASH_SHA256))
        self.add(checksum, SPDX.checksumValue, Literal(bulk.sha256, datatype=XSD.hexBinary))
        self.add(distribution, SPDX.checksum, checksum)
        return distribution
