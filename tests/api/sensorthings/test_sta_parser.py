"""The query option parser: what it builds of good options, and what it says of bad ones."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from datahub.api.sensorthings.ast import Binary, Call, Literal, Prop, Type, Unary
from datahub.api.sensorthings.model import EntityType
from datahub.api.sensorthings.parser import Limits, OptionParser, QueryError
from datahub.api.sensorthings.paths import parse_path
from datahub.errors import BadRequest, NotFound

LIMITS = Limits(top_default=100, top_max=1000, skip_max=500)
E = EntityType


def options(entity: EntityType, **raw: str) -> object:
    return OptionParser(entity, LIMITS).parse({f"${k}": v for k, v in raw.items()})


def test_precedence_and_binds_tighter_than_or_and_not_applies_to_a_comparison() -> None:
    parsed = options(E.OBSERVATION, filter="not result gt 1 or result lt 0 and result ne 5")
    tree = parsed.filter  # type: ignore[attr-defined]

    assert isinstance(tree, Binary) and tree.op == "or"
    assert isinstance(tree.left, Unary) and tree.left.op == "not"
    assert isinstance(tree.right, Binary) and tree.right.op == "and"


def test_arithmetic_then_comparison() -> None:
    tree = options(E.OBSERVATION, filter="result mul 2 add 1 ge 7").filter  # type: ignore[attr-defined]

    assert isinstance(tree, Binary) and tree.op == "ge"
    assert isinstance(tree.left, Binary) and tree.left.op == "add"
    assert isinstance(tree.left.left, Binary) and tree.left.left.op == "mul"


def test_paths_resolve_over_navigation_properties_to_typed_properties() -> None:
    tree = options(E.OBSERVATION, filter="Datastream/Thing/properties/city eq 'dortmund'").filter  # type: ignore[attr-defined]

    assert isinstance(tree, Binary)
    prop = tree.left
    assert isinstance(prop, Prop)
    assert [h.name for h in prop.hops] == ["Datastream", "Thing"]
    assert (prop.entity, prop.name, prop.key, prop.type) == (
        E.THING,
        "properties",
        "city",
        Type.STRING,
    )


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("2024-05-01T12:00:00Z", datetime(2024, 5, 1, 12, tzinfo=UTC)),
        ("2024-05-01T14:00:00+02:00", datetime(2024, 5, 1, 12, tzinfo=UTC)),
        ("2024-05-01T12:00:00.250Z", datetime(2024, 5, 1, 12, 0, 0, 250_000, tzinfo=UTC)),
        ("2024-05-01", datetime(2024, 5, 1, tzinfo=UTC)),
    ],
    ids=["utc", "offset", "fraction", "date"],
)
def test_time_literals(text: str, value: datetime) -> None:
    tree = options(E.OBSERVATION, filter=f"phenomenonTime ge {text}").filter  # type: ignore[attr-defined]

    assert isinstance(tree, Binary) and tree.right == Literal(value, Type.TIME)


def test_functions_check_their_arguments() -> None:
    tree = options(E.THING, filter="startswith(tolower(name), 'sens')").filter  # type: ignore[attr-defined]

    assert isinstance(tree, Call) and tree.name == "startswith"
    assert isinstance(tree.args[0], Call) and tree.args[0].name == "tolower"


def test_a_geography_literal_is_longitude_first() -> None:
    tree = options(
        E.LOCATION,
        filter="geo.intersects(location, geography'POLYGON((7 51, 8 51, 8 52, 7 51))')",
    ).filter  # type: ignore[attr-defined]

    assert isinstance(tree, Call)
    geometry = tree.args[1]
    assert isinstance(geometry, Literal) and geometry.type is Type.GEOMETRY
    assert geometry.value.coordinates[0] == (7.0, 51.0)  # type: ignore[union-attr]


def test_orderby_in_either_case_and_select_and_nested_expand() -> None:
    parsed = options(
        E.DATASTREAM,
        orderby="phenomenonTime/end DESC,name asc",
        select="id,name,Thing",
        expand="Observations($top=3;$orderby=phenomenonTime desc;$select=result),Thing/Locations",
    )

    assert [o.descending for o in parsed.orderby] == [True, False]  # type: ignore[attr-defined]
    assert parsed.select == ("@iot.id", "name", "Thing")  # type: ignore[attr-defined]
    observations, thing = parsed.expand  # type: ignore[attr-defined]
    assert observations.options.top == 3
    assert observations.options.orderby[0].descending
    assert observations.options.select == ("result",)
    assert thing.relation.name == "Thing"
    assert thing.options.expand[0].relation.name == "Locations"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"filter": "name eq"}, "$filter: expected a value, a property or a function"),
        ({"filter": "nope eq 1"}, "Thing has no property 'nope'"),
        ({"filter": "name eq 'x"}, 'unexpected "\'" at position 9'),
        ({"filter": "name eq 1"}, "cannot compare a string with a number"),
        ({"filter": "name"}, "expected a condition"),
        ({"filter": "frobnicate(name)"}, "unknown function 'frobnicate'"),
        ({"filter": "properties/colour eq 'red'"}, "has no key 'colour'"),
        ({"filter": "name eq 'a' and"}, "found nothing at the end"),
        ({"filter": "name eq 2024-05-01T00:00:00"}, "needs an offset"),
        ({"top": "1001"}, "$top=1001 is over the maximum of 1000"),
        ({"top": "-1"}, "$top must be a whole number"),
        ({"skip": "501"}, "$skip=501 is over the maximum of 500"),
        ({"count": "yes"}, "$count must be true or false"),
        ({"select": "name,colour"}, "Thing has no property 'colour'"),
        ({"expand": "Sensors"}, "Thing has no navigation property 'Sensors'"),
        ({"expand": "Datastreams($top=1;$bogus=2)"}, "'$bogus=2' is not an option"),
        ({"orderby": "location"}, "Thing has no property 'location'"),
    ],
    ids=lambda v: str(v) if isinstance(v, dict) else "",
)
def test_bad_options_are_400_naming_what_is_wrong(raw: dict[str, str], message: str) -> None:
    with pytest.raises(QueryError) as caught:
        options(E.THING, **raw)

    assert isinstance(caught.value, BadRequest)
    assert message in caught.value.detail


def depth(expr: object) -> int:
    children = [getattr(expr, name, None) for name in ("left", "right", "operand")]
    return 1 + max((depth(c) for c in children if c is not None), default=0)


def test_a_long_run_of_and_or_or_is_a_balanced_tree() -> None:
    alternatives = " or ".join(f"id eq {i}" for i in range(1000))
    tree = options(E.THING, filter=f"{alternatives} and name eq 'x'").filter  # type: ignore[attr-defined]

    assert isinstance(tree, Binary) and tree.op == "or"
    assert depth(tree) == 13  # 10 levels of or, the last alternative's and, eq, operands


@pytest.mark.parametrize(
    ("raw", "at"),
    [
        ({"filter": "(" * 41 + "name eq 'a'" + ")" * 41}, 41),
        ({"filter": "not " * 41 + "name eq 'a'"}, 161),
        ({"filter": "length(name) " + "add 1 " * 41 + "eq 1"}, 254),
        ({"filter": "@iot.id eq " + "-" * 41 + "1"}, 52),
        ({"filter": "tolower(" * 41 + "name" + ")" * 41 + " eq 'a'"}, 321),
        ({"expand": "/".join(["Datastreams", "Thing"] * 21)}, 361),
        ({"expand": "Datastreams($expand=Thing($expand=" * 21 + "Datastreams" + "))" * 21}, 0),
    ],
    ids=["parentheses", "not", "add", "minus", "functions", "expand", "nested options"],
)
def test_nesting_deeper_than_the_maximum_is_400(raw: dict[str, str], at: int) -> None:
    with pytest.raises(QueryError) as caught:
        options(E.THING, **raw)

    assert "nests more than 40 levels deep; simplify it" in caught.value.detail
    if at:
        assert f"at position {at}" in caught.value.detail


def test_nesting_up_to_the_maximum_is_parsed() -> None:
    tree = options(E.THING, filter="(" * 40 + "name eq 'a'" + ")" * 40).filter  # type: ignore[attr-defined]

    assert isinstance(tree, Binary) and tree.op == "eq"


@pytest.mark.parametrize(
    ("path", "steps", "tail"),
    [
        ("Things", [("Thing", None, False)], {}),
        ("Things(7)", [("Thing", 7, True)], {}),
        (
            "Datastreams(4217)/Observations",
            [("Datastream", 4217, True), ("Observation", None, False)],
            {},
        ),
        (
            "Observations(5)/Datastream/Thing",
            [("Observation", 5, True), ("Datastream", None, True), ("Thing", None, True)],
            {},
        ),
        ("Things(1)/name/$value", [("Thing", 1, True)], {"property": "name", "value": True}),
        ("Things/$ref", [("Thing", None, False)], {"ref": True}),
    ],
)
def test_resource_paths(
    path: str, steps: list[tuple[str, int | None, bool]], tail: dict[str, object]
) -> None:
    resource = parse_path(path)

    assert [(s.entity.value, s.entity_id, s.single) for s in resource.steps] == steps
    for name, value in tail.items():
        assert getattr(resource, name) == value


@pytest.mark.parametrize(
    ("path", "error", "message"),
    [
        ("Nope", NotFound, "no entity set 'Nope'"),
        ("Things/Datastreams", BadRequest, "address one Thing by its id"),
        ("Datastreams(1)/Thing(2)", BadRequest, "takes no id"),
        ("Things(1)/colour", NotFound, "has no property or navigation property 'colour'"),
        ("Things('x')", NotFound, "no Thing has id 'x'"),
    ],
)
def test_bad_paths(path: str, error: type[Exception], message: str) -> None:
    with pytest.raises(error) as caught:
        parse_path(path)

    assert message in str(caught.value)
