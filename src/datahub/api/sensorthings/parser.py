"""Parse SensorThings query options (`$filter`, `$orderby`, `$select`, `$expand`, `$top`,
`$skip`, `$count`) into the typed tree of ast.py, resolving every name against the model.

The `$filter` grammar, a subset of OData 4.01 as OGC 18-088 section 9.3.3 uses it, by
descending precedence (operators are case-sensitive words, as in OData):

    expr     = or
    or       = and { "or" and }
    and      = not { "and" not }
    not      = "not" not | compare
    compare  = add [ ("eq" | "ne" | "gt" | "ge" | "lt" | "le") add ]
    add      = mul { ("add" | "sub") mul }
    mul      = unary { ("mul" | "div" | "mod") unary }
    unary    = "-" unary | primary
    primary  = literal | "(" expr ")" | function "(" [ expr { "," expr } ] ")" | path
    path     = name { "/" name }          navigation properties, then a property, then a key
    literal  = number | 'string' ('' escapes a quote) | true | false | null
             | 2024-05-01T12:00:00Z (a date and time with an offset) | 2024-05-01
             | duration'P1DT2H' | geography'POINT(7.46 51.51)' (also geometry'…'; POINT,
               LINESTRING, POLYGON with one ring, longitude first)

    $orderby = expr [ "asc" | "desc" ] { "," … }   (asc and desc in either case)
    $select  = name { "," name }
    $expand  = item { "," item };  item = nav { "/" nav } [ "(" option { ";" option } ")" ]
               where an option is one of these, for the navigation's target

Every error is a `QueryError` naming the option, the position and what was expected.
Nesting is bounded (MAX_NESTING): a query that nests deeper is refused as such, never
left to exhaust the interpreter's recursion (a 500). A run of `and` (or of `or`) becomes a
balanced tree, so that a long list of alternatives nests only as deep as its logarithm.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from datahub.api.sensorthings.ast import (
    Binary,
    Call,
    Expand,
    Expr,
    Geometry,
    Literal,
    Options,
    OrderBy,
    Prop,
    Type,
    Unary,
)
from datahub.api.sensorthings.model import (
    OBJECT_KEYS,
    PROPERTIES,
    RELATIONS,
    EntityType,
    Kind,
    Relation,
    property_name,
)
from datahub.errors import BadRequest

T = TypeVar("T")
# Levels a query may nest: parentheses, functions, `not`, `-`, arithmetic operators (each
# `add` of a run counts), and `$expand` levels. Each level of parentheses costs the
# parser about ten frames; 40 of them stay well inside Python's recursion limit of 1000.
MAX_NESTING = 40


class QueryError(BadRequest):
    """A query option that cannot be parsed, or names what does not exist."""


_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<datetime>\d{4}-\d{2}-\d{2}(?:T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:\d{2})?)?)
  | (?P<number>\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)
  | (?P<typed>(?:duration|geography|geometry)'[^']*')
  | (?P<string>'(?:[^']|'')*')
  | (?P<name>[@$]?[A-Za-z_][A-Za-z0-9_.]*)
  | (?P<punct>[()/,;=-])
    """,
    re.VERBOSE,
)
_COMPARE = {"eq", "ne", "gt", "ge", "lt", "le"}
_DURATION = re.compile(r"^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$")
_WKT = re.compile(r"^\s*(POINT|LINESTRING|POLYGON)\s*\((.*)\)\s*$", re.IGNORECASE)
_NUMBER_PAIR = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s+(-?\d+(?:\.\d+)?)\s*$")


@dataclass(frozen=True, slots=True)
class Token:
    kind: str  # datetime number typed string name punct end
    text: str
    at: int


def tokenize(option: str, text: str) -> list[Token]:
    """Split an option's value into tokens; QueryError at the first character that is none."""
    tokens = []
    at = 0
    while at < len(text):
        match = _TOKEN.match(text, at)
        if match is None:
            raise QueryError(f"{option}: unexpected {text[at]!r} at position {at + 1}")
        kind = match.lastgroup or ""
        if kind != "space":
            tokens.append(Token(kind, match.group(), at))
        at = match.end()
    tokens.append(Token("end", "", len(text)))
    return tokens


# Functions: name -> (argument types, result type). TIME arguments take intervals too.
_S, _N, _B, _T, _G = Type.STRING, Type.NUMBER, Type.BOOLEAN, Type.TIME, Type.GEOMETRY
FUNCTIONS: dict[str, tuple[tuple[Type, ...], Type]] = {
    "substringof": ((_S, _S), _B),
    "contains": ((_S, _S), _B),
    "startswith": ((_S, _S), _B),
    "endswith": ((_S, _S), _B),
    "length": ((_S,), _N),
    "indexof": ((_S, _S), _N),
    "substring": ((_S, _N), _S),
    "tolower": ((_S,), _S),
    "toupper": ((_S,), _S),
    "trim": ((_S,), _S),
    "concat": ((_S, _S), _S),
    "year": ((_T,), _N),
    "month": ((_T,), _N),
    "day": ((_T,), _N),
    "hour": ((_T,), _N),
    "minute": ((_T,), _N),
    "second": ((_T,), _N),
    "fractionalseconds": ((_T,), _N),
    "date": ((_T,), _T),
    "totaloffsetminutes": ((_T,), _N),
    "now": ((), _T),
    "mindatetime": ((_T,), _T),
    "maxdatetime": ((_T,), _T),
    "round": ((_N,), _N),
    "floor": ((_N,), _N),
    "ceiling": ((_N,), _N),
    "geo.distance": ((_G, _G), _N),
    "geo.intersects": ((_G, _G), _B),
    "st_intersects": ((_G, _G), _B),
    "st_disjoint": ((_G, _G), _B),
    "st_within": ((_G, _G), _B),
    "st_contains": ((_G, _G), _B),
    "st_equals": ((_G, _G), _B),
}
# substring(s, start, length) has an optional third argument.
_OPTIONAL_ARGS = {"substring": (_N,)}


class _Parser:
    def __init__(self, option: str, text: str, entity: EntityType, depth: int = 0) -> None:
        self.option = option
        self.text = text
        self.tokens = tokenize(option, text)
        self.pos = 0
        self.entity = entity
        self.depth = depth  # the levels this option is nested in (of $expand, then its own)

    # -- tokens

    @property
    def token(self) -> Token:
        return self.tokens[self.pos]

    def error(self, message: str, token: Token | None = None) -> QueryError:
        token = token or self.token
        where = "at the end" if token.kind == "end" else f"at position {token.at + 1}"
        return QueryError(f"{self.option}: {message} {where}")

    def take(self) -> Token:
        token = self.token
        self.pos += 1
        return token

    def accept(self, text: str) -> bool:
        if self.token.kind in ("name", "punct") and self.token.text == text:
            self.pos += 1
            return True
        return False

    def expect(self, text: str) -> None:
        if not self.accept(text):
            found = repr(self.token.text) if self.token.kind != "end" else "nothing"
            raise self.error(f"expected {text!r}, found {found}")

    def at_end(self) -> None:
        if self.token.kind != "end":
            raise self.error(f"unexpected {self.token.text!r}")

    @contextmanager
    def nested(self, token: Token) -> Iterator[None]:
        """Go one level deeper for what follows `token`; QueryError past MAX_NESTING."""
        if self.depth >= MAX_NESTING:
            raise self.error(f"nests more than {MAX_NESTING} levels deep; simplify it", token)
        self.depth += 1
        try:
            yield
        finally:
            self.depth -= 1

    # -- $filter

    def expression(self) -> Expr:
        return self.or_()

    def or_(self) -> Expr:
        terms = [self.and_()]
        while self.accept("or"):
            if len(terms) == 1:
                self.boolean(terms[0])
            terms.append(self.boolean(self.and_()))
        return _balanced("or", terms)

    def and_(self) -> Expr:
        terms = [self.not_()]
        while self.accept("and"):
            if len(terms) == 1:
                self.boolean(terms[0])
            terms.append(self.boolean(self.not_()))
        return _balanced("and", terms)

    def not_(self) -> Expr:
        token = self.token
        if self.accept("not"):
            with self.nested(token):
                return Unary("not", self.boolean(self.not_()), Type.BOOLEAN)
        return self.compare()

    def compare(self) -> Expr:
        left = self.add()
        token = self.token
        if token.kind == "name" and token.text in _COMPARE:
            self.pos += 1
            right = self.add()
            self.check_comparable(left, right, token)
            return Binary(token.text, left, right, Type.BOOLEAN)
        return left

    def add(self) -> Expr:
        left = self.mul()
        start = self.depth
        while self.token.kind == "name" and self.token.text in ("add", "sub"):
            token = self.take()
            # A run of operators is a tree as deep as the run is long.
            with self.nested(token):
                right = self.mul()
            self.depth += 1
            left = Binary(token.text, left, right, self.arithmetic(left, right, token))
        self.depth = start
        return left

    def mul(self) -> Expr:
        left = self.unary()
        start = self.depth
        while self.token.kind == "name" and self.token.text in ("mul", "div", "mod"):
            token = self.take()
            with self.nested(token):
                right = self.unary()
            self.depth += 1
            if left.type is not Type.NUMBER or right.type is not Type.NUMBER:
                raise self.error(f"{token.text!r} needs two numbers", token)
            left = Binary(token.text, left, right, Type.NUMBER)
        self.depth = start
        return left

    def unary(self) -> Expr:
        token = self.token
        if self.accept("-"):
            with self.nested(token):
                operand = self.unary()
            if operand.type is not Type.NUMBER:
                raise self.error("'-' needs a number", token)
            if isinstance(operand, Literal) and isinstance(operand.value, int | float):
                return Literal(-operand.value, Type.NUMBER)
            return Unary("-", operand, Type.NUMBER)
        return self.primary()

    def primary(self) -> Expr:
        token = self.token
        if self.accept("("):
            with self.nested(token):
                inner = self.expression()
            self.expect(")")
            return inner
        if token.kind == "number":
            self.pos += 1
            number = float(token.text) if any(c in token.text for c in ".eE") else int(token.text)
            return Literal(number, Type.NUMBER)
        if token.kind == "string":
            self.pos += 1
            return Literal(token.text[1:-1].replace("''", "'"), Type.STRING)
        if token.kind == "datetime":
            self.pos += 1
            return Literal(self.datetime(token), Type.TIME)
        if token.kind == "typed":
            self.pos += 1
            return self.typed(token)
        if token.kind == "name":
            if token.text in ("true", "false"):
                self.pos += 1
                return Literal(token.text == "true", Type.BOOLEAN)
            if token.text == "null":
                self.pos += 1
                return Literal(None, Type.NULL)
            if self.tokens[self.pos + 1].text == "(" and self.tokens[self.pos + 1].kind == "punct":
                return self.call()
            return self.path()
        found = repr(token.text) if token.kind != "end" else "nothing"
        raise self.error(f"expected a value, a property or a function, found {found}")

    def datetime(self, token: Token) -> datetime:
        text = token.text
        if "T" not in text:
            text += "T00:00:00Z"
        elif not (text.endswith("Z") or re.search(r"[+-]\d{2}:\d{2}$", text)):
            raise self.error(f"time {token.text} needs an offset, e.g. Z or +02:00", token)
        try:
            return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)
        except ValueError:
            raise self.error(f"{token.text} is not a valid date and time", token) from None

    def typed(self, token: Token) -> Literal:
        prefix, _, rest = token.text.partition("'")
        body = rest[:-1]
        if prefix == "duration":
            match = _DURATION.match(body)
            if match is None or body in ("P", "PT"):
                raise self.error(f"duration {body!r} is not like P1DT2H30M", token)
            days, hours, minutes, seconds = (float(g) if g else 0.0 for g in match.groups())
            span = timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
            return Literal(span, Type.DURATION)
        return Literal(self.wkt(body, token), Type.GEOMETRY)

    def wkt(self, body: str, token: Token) -> Geometry:
        match = _WKT.match(body)
        if match is None:
            raise self.error(f"geometry {body!r} is not a WKT POINT, LINESTRING or POLYGON", token)
        kind = {"POINT": "Point", "LINESTRING": "LineString", "POLYGON": "Polygon"}[
            match.group(1).upper()
        ]
        inner = match.group(2).strip()
        if kind == "Polygon":
            if not (inner.startswith("(") and inner.endswith(")")) or "(" in inner[1:]:
                raise self.error("a POLYGON needs exactly one ring: POLYGON((x y, …))", token)
            inner = inner[1:-1]
        pairs = []
        for part in inner.split(","):
            pair = _NUMBER_PAIR.match(part)
            if pair is None:
                raise self.error(f"{part.strip()!r} is not a coordinate pair 'x y'", token)
            pairs.append((float(pair.group(1)), float(pair.group(2))))
        if (kind == "Point" and len(pairs) != 1) or (kind == "Polygon" and len(pairs) < 4):
            raise self.error(f"{kind} {body!r} has the wrong number of points", token)
        return Geometry(kind, tuple(pairs))

    def call(self) -> Call:
        token = self.take()
        name = token.text
        if name not in FUNCTIONS:
            raise self.error(f"unknown function {name!r}", token)
        self.expect("(")
        args: list[Expr] = []
        if not self.accept(")"):
            with self.nested(token):
                args.append(self.expression())
                while self.accept(","):
                    args.append(self.expression())
            self.expect(")")
        wanted, result = FUNCTIONS[name]
        allowed = (wanted, wanted + _OPTIONAL_ARGS.get(name, ()))
        if tuple(len(a) for a in allowed).count(len(args)) == 0:
            raise self.error(f"{name} takes {len(wanted)} arguments, got {len(args)}", token)
        for arg, kind in zip(args, allowed[1], strict=False):
            if arg.type is not kind and arg.type is not Type.NULL:
                raise self.error(f"{name} needs a {kind} argument, got a {arg.type}", token)
        return Call(name, tuple(args), result)

    def path(self) -> Prop:
        """Resolve `nav/nav/property/key` from the query's entity type."""
        token = self.token
        names = [self.take().text]
        while self.token.text == "/" and self.token.kind == "punct":
            self.pos += 1
            if self.token.kind != "name":
                raise self.error("expected a name after '/'")
            names.append(self.take().text)
        try:
            return resolve(self.entity, names)
        except QueryError as exc:
            raise self.error(exc.detail, token) from None

    def boolean(self, expr: Expr) -> Expr:
        if expr.type is not Type.BOOLEAN:
            raise self.error(f"expected a condition, found a {expr.type} expression")
        return expr

    def check_comparable(self, left: Expr, right: Expr, token: Token) -> None:
        types = {left.type, right.type} - {Type.NULL}
        if len(types) > 1:
            raise self.error(
                f"cannot compare a {left.type} with a {right.type} ({token.text!r})", token
            )
        if Type.GEOMETRY in types or (Type.BOOLEAN in types and token.text not in ("eq", "ne")):
            raise self.error(f"{token.text!r} does not compare {types.pop()} values", token)

    def arithmetic(self, left: Expr, right: Expr, token: Token) -> Type:
        pair = (left.type, right.type)
        if pair == (Type.NUMBER, Type.NUMBER):
            return Type.NUMBER
        if pair == (Type.TIME, Type.DURATION):
            return Type.TIME
        if token.text == "sub" and pair == (Type.TIME, Type.TIME):
            return Type.DURATION
        raise self.error(f"cannot {token.text} a {right.type} to a {left.type}", token)

    # -- $orderby, $select, $expand

    def orderby(self) -> tuple[OrderBy, ...]:
        items = []
        while True:
            expr = self.expression()
            if expr.type in (Type.GEOMETRY, Type.NULL):
                raise self.error(f"cannot order by a {expr.type}")
            descending = False
            if self.token.kind == "name" and self.token.text.lower() in ("asc", "desc"):
                descending = self.take().text.lower() == "desc"
            items.append(OrderBy(expr, descending))
            if not self.accept(","):
                return tuple(items)

    def select(self) -> tuple[str, ...]:
        names = []
        while True:
            token = self.token
            if token.kind != "name":
                raise self.error("expected a property name")
            self.pos += 1
            name = property_name(self.entity, token.text)
            if name is None and token.text not in RELATIONS[self.entity]:
                raise self.error(f"{self.entity} has no property {token.text!r}", token)
            names.append(name or token.text)
            if not self.accept(","):
                return tuple(dict.fromkeys(names))

    def expand(self, options: OptionParser) -> tuple[Expand, ...]:
        items: list[Expand] = []
        while True:
            items.append(self.expand_item(self.entity, options))
            if not self.accept(","):
                return tuple(_merge(items))

    def expand_item(self, entity: EntityType, options: OptionParser) -> Expand:
        token = self.token
        if token.kind != "name":
            raise self.error("expected a navigation property")
        relation = RELATIONS[entity].get(token.text)
        if relation is None:
            known = ", ".join(RELATIONS[entity])
            raise self.error(f"{entity} has no navigation property {token.text!r} ({known})")
        self.pos += 1
        if self.accept("/"):
            with self.nested(token):
                inner = self.expand_item(relation.target, options)
            return Expand(relation, Options(expand=(inner,)))
        if not self.accept("("):
            return Expand(relation)
        if self.depth >= MAX_NESTING:
            raise self.error(f"nests more than {MAX_NESTING} levels deep; simplify it", token)
        start = self.token.at
        depth = 1
        while depth:
            token = self.take()
            if token.kind == "end":
                raise self.error("expected ')' to close the options of " + relation.name)
            depth += {"(": 1, ")": -1}.get(token.text, 0) if token.kind == "punct" else 0
        raw = self.text[start : self.tokens[self.pos - 1].at]
        return Expand(relation, options.nested(relation, raw, self.depth + 1), raw)


def _balanced(op: str, terms: Sequence[Expr]) -> Expr:
    """`a op b op c …` as a tree of the least depth (`and` and `or` are associative)."""
    if len(terms) == 1:
        return terms[0]
    middle = len(terms) // 2
    return Binary(op, _balanced(op, terms[:middle]), _balanced(op, terms[middle:]), Type.BOOLEAN)


def _merge(items: Sequence[Expand]) -> list[Expand]:
    """Merge `A/B,A/C` into one expansion of A that expands B and C."""
    merged: dict[str, Expand] = {}
    for item in items:
        seen = merged.get(item.relation.name)
        if seen is None:
            merged[item.relation.name] = item
        else:
            inner = _merge([*seen.options.expand, *item.options.expand])
            merged[item.relation.name] = replace(
                seen, options=replace(seen.options, expand=tuple(inner))
            )
    return list(merged.values())


def resolve(entity: EntityType, names: Sequence[str]) -> Prop:
    """Resolve a path of names (navigation properties, a property, a key) from `entity`."""
    hops: list[Relation] = []
    current = entity
    at = 0
    while at < len(names) and names[at] in RELATIONS[current]:
        relation = RELATIONS[current][names[at]]
        hops.append(relation)
        current = relation.target
        at += 1
    if at == len(names):
        raise QueryError(f"{'/'.join(names)} is an entity, not a property")
    name = property_name(current, names[at])
    if name is None:
        known = ", ".join([*PROPERTIES[current], *RELATIONS[current]])
        raise QueryError(f"{current} has no property {names[at]!r} (it has {known})")
    kind = PROPERTIES[current][name]
    rest = names[at + 1 :]
    if not rest:
        if kind is Kind.OBJECT:
            raise QueryError(f"{name} is an object; name one of its keys, e.g. {name}/…")
        return Prop(tuple(hops), current, name, kind)
    if len(rest) > 1:
        raise QueryError(f"{'/'.join(names)} goes too deep")
    key = rest[0]
    if kind is Kind.INTERVAL:
        if key not in ("start", "end"):
            raise QueryError(f"{name} is a time interval: its parts are start and end")
        return Prop(tuple(hops), current, name, kind, key, Kind.TIME)
    keys = OBJECT_KEYS.get((current, name))
    if kind is not Kind.OBJECT or keys is None or key not in keys:
        known = ", ".join(keys or ()) or "none"
        raise QueryError(f"{current} {name} has no key {key!r} that filters reach ({known})")
    return Prop(tuple(hops), current, name, kind, key, keys[key])


@dataclass(frozen=True, slots=True)
class Limits:
    top_default: int
    top_max: int
    skip_max: int


class OptionParser:
    """Parses the options of one entity type (and of the entity types it expands to)."""

    def __init__(self, entity: EntityType, limits: Limits, depth: int = 0) -> None:
        self.entity = entity
        self.limits = limits
        self.depth = depth  # the $expand levels these options are nested in

    def parse(self, raw: dict[str, str]) -> Options:
        """Build the options from `$name -> value`; QueryError for anything wrong."""
        return Options(
            filter=self._with(raw, "$filter", lambda p: p.boolean(p.expression())),
            orderby=self._with(raw, "$orderby", lambda p: p.orderby()) or (),
            top=self._number(raw, "$top", self.limits.top_max),
            skip=self._number(raw, "$skip", self.limits.skip_max) or 0,
            count=self._count(raw.get("$count")),
            select=self._with(raw, "$select", lambda p: p.select()) or (),
            expand=self._with(raw, "$expand", lambda p: p.expand(self)) or (),
        )

    def nested(self, relation: Relation, text: str, depth: int) -> Options:
        """Parse `$top=3;$orderby=…` of an expanded navigation property, `depth` levels
        down."""
        raw: dict[str, str] = {}
        for part in _split_options(text):
            name, sep, value = part.partition("=")
            name = name.strip()
            if not sep or name not in _OPTION_NAMES:
                raise QueryError(
                    f"$expand={relation.name}(…): {part.strip()!r} is not an option "
                    f"({', '.join(sorted(_OPTION_NAMES))})"
                )
            raw[name] = value
        return OptionParser(relation.target, self.limits, depth).parse(raw)

    def _with(self, raw: dict[str, str], option: str, run: Callable[[_Parser], T]) -> T | None:
        text = raw.get(option)
        if text is None:
            return None
        if not text.strip():
            raise QueryError(f"{option} is empty")
        parser = _Parser(option, text, self.entity, self.depth)
        value = run(parser)
        parser.at_end()
        return value

    @staticmethod
    def _number(raw: dict[str, str], option: str, maximum: int) -> int | None:
        text = raw.get(option)
        if text is None:
            return None
        if not text.strip().isdigit():
            raise QueryError(f"{option} must be a whole number ≥ 0, got {text!r}")
        value = int(text)
        if value > maximum:
            raise QueryError(f"{option}={value} is over the maximum of {maximum}")
        return value

    @staticmethod
    def _count(text: str | None) -> bool:
        if text is None or text == "false":
            return False
        if text == "true":
            return True
        raise QueryError(f"$count must be true or false, got {text!r}")


_OPTION_NAMES = {"$filter", "$orderby", "$top", "$skip", "$count", "$select", "$expand"}


def _split_options(text: str) -> list[str]:
    """Split `a;b(c;d);e` at the semicolons outside parentheses and quotes."""
    parts, depth, quoted, start = [], 0, False, 0
    for at, char in enumerate(text):
        if char == "'":
            quoted = not quoted
        elif not quoted and char == "(":
            depth += 1
        elif not quoted and char == ")":
            depth -= 1
        elif not quoted and depth == 0 and char == ";":
            parts.append(text[start:at])
            start = at + 1
    parts.append(text[start:])
    return [p for p in parts if p.strip()]
