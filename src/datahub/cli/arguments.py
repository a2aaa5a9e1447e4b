"""The argument types the commands share: aware times, slugs, counts, periods."""

from __future__ import annotations

import argparse
from datetime import datetime

from datahub import audit
from datahub.domain import SLUG
from datahub.errors import BadRequest
from datahub.fairshare.close import period_bounds

# The value that clears an optional field (`--supplier none`).
NONE = "none"


def aware_time(text: str) -> datetime:
    """An ISO 8601 time with a UTC offset."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 time") from None
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} has no UTC offset; add Z or +01:00")
    return value


def slug(text: str) -> str:
    """A lower-case slug (domain.SLUG)."""
    if not SLUG.fullmatch(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a lower-case slug")
    return text


def slug_or_none(text: str) -> str:
    """A slug, or `none`."""
    return NONE if text == NONE else slug(text)


def count(text: str) -> int:
    """A whole number, 0 or more."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is negative")
    return value


def count_or_none(text: str) -> int | str:
    """A whole number, 0 or more, or `none`."""
    return NONE if text == NONE else count(text)


def yes_no(text: str) -> bool:
    """A yes or a no, spelt out: `--catalogue-listed yes`."""
    if text not in ("yes", "no"):
        raise argparse.ArgumentTypeError(f"{text!r} is neither yes nor no")
    return text == "yes"


def period(text: str) -> str:
    """A month, YYYY-MM."""
    try:
        period_bounds(text)
    except BadRequest as exc:
        raise argparse.ArgumentTypeError(exc.detail) from None
    return text


def actor_of(args: argparse.Namespace) -> str:
    """Return who runs this command, for the audit log: the OS user, and `--as` if given."""
    return audit.cli_actor(getattr(args, "as_name", None))
