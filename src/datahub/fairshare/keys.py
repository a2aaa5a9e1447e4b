"""API keys: `dh_<prefix>_<secret>`, random, shown once, stored as a SHA-256."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from enum import StrEnum

_KEY = re.compile(r"^dh_([A-Za-z0-9]{12})_([A-Za-z0-9_-]{43})$")


class Scope(StrEnum):
    """What a key may do: read data and its own usage, administer the hub, or oversee it.

    An `ombudsman` key reads everything an administrator reads (statements, invoices, the
    usage ledger, tariffs, grants, consumers, the audit log) and changes nothing; a key is
    never both `admin` and `ombudsman`.
    """

    READ = "read"
    ADMIN = "admin"
    OMBUDSMAN = "ombudsman"


@dataclass(frozen=True, slots=True)
class NewKey:
    """A key just made: `secret` is the whole key, to be shown once and then forgotten."""

    prefix: str
    secret: str
    key_hash: bytes


def generate_key() -> NewKey:
    """Make a new key: a 12-character lookup prefix and 256 random bits."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    prefix = "".join(secrets.choice(alphabet) for _ in range(12))
    secret = f"dh_{prefix}_{secrets.token_urlsafe(32)}"
    return NewKey(prefix=prefix, secret=secret, key_hash=hash_key(secret))


def hash_key(secret: str) -> bytes:
    """Hash a whole key for storage and comparison."""
    return hashlib.sha256(secret.encode()).digest()


def parse_prefix(secret: str) -> str | None:
    """Return a well-formed key's prefix, or None."""
    match = _KEY.match(secret)
    return match.group(1) if match else None


def matches(secret: str, key_hash: bytes) -> bool:
    """Compare a presented key with a stored hash in constant time."""
    return hmac.compare_digest(hash_key(secret), key_hash)
