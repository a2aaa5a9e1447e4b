"""The DCAT-AP.de catalogue of the demo's seeded datasets, validated by GovData's shapes.

The shapes under dcat_ap_de/ are those of the DCAT-AP.de 2.0 release (GovData's profile
"Spezifikation + Konventionen", see dcat_ap_de/README.md); vocabularies.ttl holds the
entries of the controlled vocabularies that the shapes import from the internet.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient
from opendata_world import BASE_URL
from pyshacl import validate
from rdflib import Graph, Literal, URIRef, namespace

# The namespaces are used as `namespace.DCAT`, never module globals of their own: pytest's
# collection probes every global, and rdflib warns about each unknown name it is asked for.
SHAPES = Path(__file__).parent / "dcat_ap_de"
CATALOGUE = URIRef(f"{BASE_URL}/v1/catalogue")
DCATDE = "http://dcat-ap.de/def/dcatde/"
FORMATS = {
    "ttl": ("text/turtle", "turtle"),
    "jsonld": ("application/ld+json", "json-ld"),
    "rdf": ("application/rdf+xml", "xml"),
}


@cache
def shapes() -> Graph:
    graph = Graph()
    for path in sorted(SHAPES.glob("dcat-ap*.ttl")):
        graph.parse(path, format="turtle")
    return graph


@cache
def vocabularies() -> Graph:
    return Graph().parse(SHAPES / "vocabularies.ttl", format="turtle")


def conforms(graph: Graph) -> None:
    """Assert that the graph conforms to the shapes, warnings included; show why not.

    The vocabularies join the data graph, as the validator's owl:imports bring them in.
    """
    ok, _, text = validate(graph + vocabularies(), shacl_graph=shapes(), allow_warnings=False)
    assert ok, text


def dataset(slug: str) -> URIRef:
    return URIRef(f"{CATALOGUE}#dataset-{slug}")


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_every_serialisation_parses_and_conforms_to_dcat_ap_de(
    client: TestClient, fmt: str
) -> None:
    media_type, parser = FORMATS[fmt]
    by_param = client.get("/v1/catalogue", params={"format": fmt})
    by_accept = client.get("/v1/catalogue", headers={"Accept": f"{media_type}, */*;q=0.1"})

    assert by_param.status_code == by_accept.status_code == 200, by_param.text
    assert by_param.headers["content-type"] == f"{media_type}; charset=utf-8"
    assert by_accept.headers["content-type"] == by_param.headers["content-type"]
    graph = Graph().parse(data=by_param.content, format=parser)
    assert (CATALOGUE, namespace.RDF.type, namespace.DCAT.Catalog) in graph
    conforms(graph)


def test_open_datasets_and_the_listed_restricted_ones_appear(client: TestClient) -> None:
    graph = Graph().parse(data=client.get("/v1/catalogue").content, format="turtle")
    listed = {
        str(o).rsplit("#dataset-", 1)[1] for o in graph.objects(CATALOGUE, namespace.DCAT.dataset)
    }

    open_ones = {
        "do-stadtklima",
        "do-luftqualitaet-bibliotheken",
        "do-passanten",
        "sw-buergerklima",
        "sw-passanten",
    }
    # Restricted and commercial ones only where the supplier lets them be listed.
    assert listed == open_ones | {"do-parken", "edg-fuellstand"}
    parken = dataset("do-parken")
    access = graph.value(parken, namespace.DCTERMS.accessRights)
    assert isinstance(access, Literal) and "Freigabe des Datengebers" in str(access)
    assert graph.value(dataset("do-stadtklima"), namespace.DCTERMS.accessRights) == URIRef(
        "http://publications.europa.eu/resource/authority/access-right/PUBLIC"
    )


def test_a_dataset_says_where_when_who_and_under_which_licence(client: TestClient) -> None:
    graph = Graph().parse(data=client.get("/v1/catalogue").content, format="turtle")
    klima = dataset("do-stadtklima")

    titles = {(t.language, str(t)) for t in graph.objects(klima, namespace.DCTERMS.title)}
    assert (
        "en",
        "Urban climate of Dortmund: air temperature, humidity and soil temperature at street trees",
    ) in titles
    assert {t.language for t in graph.objects(klima, namespace.DCTERMS.description)} == {"de", "en"}
    assert set(graph.objects(klima, URIRef(DCATDE + "politicalGeocodingURI"))) == {
        URIRef("http://dcat-ap.de/def/politicalGeocoding/regionalKey/059130000000")
    }
    assert graph.value(klima, URIRef(DCATDE + "contributorID")) == URIRef(
        "http://dcat-ap.de/def/contributors/openNRW"
    )
    themes = set(graph.objects(klima, namespace.DCAT.theme))
    assert URIRef("http://publications.europa.eu/resource/authority/data-theme/ENVI") in themes
    period = graph.value(klima, namespace.DCTERMS.temporal)
    assert str(graph.value(period, namespace.DCAT.startDate)).startswith("2026-11-28T00:00:00")
    publisher = graph.value(klima, namespace.DCTERMS.publisher)
    assert str(graph.value(publisher, URIRef("http://xmlns.com/foaf/0.1/name"))) == (
        "Stadt Dortmund, Umweltamt"
    )
    (api,) = [
        d for d in graph.objects(klima, namespace.DCAT.distribution) if str(d).endswith("-api")
    ]
    assert graph.value(api, namespace.DCTERMS.license) == URIRef(
        "http://dcat-ap.de/def/licenses/dl-by-de/2.0"
    )
    assert str(graph.value(api, URIRef(DCATDE + "licenseAttributionByText"))) == (
        "Stadt Dortmund, Umweltamt (dl-de/by-2-0)"
    )
    assert graph.value(api, namespace.DCAT.accessURL) == URIRef(
        f"{BASE_URL}/v1/devices?dataset=do-stadtklima"
    )


def test_a_dataset_without_a_licence_says_so_and_grants_nothing(
    client: TestClient, conn: psycopg.Connection
) -> None:
    """A supplier's own dataset, created without a licence, listed by its supplier."""
    conn.execute(
        "UPDATE dataset SET catalogue_listed = true, themes = '{ENVI}', keywords = '{Abfall}' "
        "WHERE slug = 'edg'"
    )
    graph = Graph().parse(data=client.get("/v1/catalogue").content, format="turtle")
    edg = dataset("edg")

    access = graph.value(edg, namespace.DCTERMS.accessRights)
    assert isinstance(access, Literal) and "Keine Lizenz angegeben (no licence given)." in access
    licences = {
        graph.value(d, namespace.DCTERMS.license)
        for d in graph.objects(edg, namespace.DCAT.distribution)
    }
    assert licences == {URIRef("http://dcat-ap.de/def/licenses/other-closed")}
    parken = graph.value(dataset("do-parken"), namespace.DCTERMS.accessRights)
    assert isinstance(parken, Literal) and "Lizenz: Nutzung nur mit Freigabe" in parken
    conforms(graph)


def test_a_sensorthings_distribution_appears_once_switched_on(
    client: TestClient, settings: object
) -> None:
    without = Graph().parse(data=client.get("/v1/catalogue").content, format="turtle")
    client.app.state.settings = client.app.state.settings.model_copy(  # type: ignore[attr-defined]
        update={
            "opendata": client.app.state.settings.opendata.model_copy(  # type: ignore[attr-defined]
                update={"sensorthings": True}
            )
        }
    )
    with_sta = Graph().parse(data=client.get("/v1/catalogue").content, format="turtle")

    def sta(graph: Graph) -> list[object]:
        return [
            d
            for d in graph.objects(dataset("do-stadtklima"), namespace.DCAT.distribution)
            if str(d).endswith("-sensorthings")
        ]

    assert sta(without) == []
    (distribution,) = sta(with_sta)
    assert with_sta.value(distribution, namespace.DCAT.accessURL) == URIRef(f"{BASE_URL}/sta/v1.1")
    conforms(with_sta)


def test_an_accept_header_it_cannot_serve_is_a_406(client: TestClient) -> None:
    response = client.get("/v1/catalogue", headers={"Accept": "application/json"})
    assert response.status_code == 406
    assert response.json()["error"] == "NotAcceptable"
