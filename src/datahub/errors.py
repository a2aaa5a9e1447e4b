"""One error root for the whole service.

DatahubError
├── ConfigError              settings that cannot work; raised at start-up
├── DropError                ingest: the message can never be stored as a good uplink;
│   │                        count it, keep it as a dead letter, acknowledge it
│   ├── EnvelopeError        not a valid uplink message of the source's format
│   └── DecodeFailure        the payload could not be decoded (the uplink is kept)
├── RetryError               a dependency is down or busy; back off, do not acknowledge
│   ├── StorageUnavailable   the database cannot be reached (the API answers 503)
│   └── StorageBusy          every pooled connection is in use and the queue for one is
│                            full or too slow, or the server cancelled a statement for a
│                            conflicting change (the API answers 429)
└── ApiError                 carries its HTTP status; rendered as {"error", "detail"}
    ├── BadRequest           400: a parameter is malformed or out of range
    ├── Unauthorized         401: an API key that is unknown, malformed or revoked
    ├── Forbidden            403: the key's scopes or grants do not allow it
    │   └── Withheld         403: personal data of fewer devices than privacy.k_min
    ├── NotFound             404
    ├── NotAcceptable        406: no representation the Accept header takes
    ├── Conflict             409: e.g. an Idempotency-Key reused for another request
    ├── Gone                 410: raw data past its dataset's retention (rollups remain)
    ├── Unprocessable        422: a well-formed body that breaks a rule (an alert rule's
    │                        thresholds, an e-mail channel without a mail server)
    ├── TooManyRequests      429: over the rate limit or the monthly quota (Retry-After)
    └── ServiceUnavailable   503: the database is down
"""

from __future__ import annotations


class DatahubError(Exception):
    """Root of every error datahub raises on purpose."""


class ConfigError(DatahubError):
    """The settings cannot work."""


class DropError(DatahubError):
    """A message that can never become a stored, decoded uplink; retrying won't help."""

    reason = "dropped"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class EnvelopeError(DropError):
    """The message is not a valid uplink of the source's format."""

    reason = "bad_envelope"


class DecodeFailure(DropError):
    """The device's decoder rejected the payload."""

    reason = "decode_failed"


class RetryError(DatahubError):
    """A dependency is unavailable: back off and try the same work again."""


class StorageUnavailable(RetryError):
    """The database cannot be reached or lost the connection.

    The message is meant for clients: it says what failed, not where (the cause, with
    host and port, is chained for the log).
    """


class StorageBusy(RetryError):
    """The database answers, but no pooled connection came free in time, or it cancelled
    a statement for another's change (a replica's recovery conflict, a deadlock)."""


class ApiError(DatahubError):
    """An error answered to an API client; `status` is the HTTP status code."""

    status = 500

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class BadRequest(ApiError):
    status = 400


class Unauthorized(ApiError):
    status = 401


class Forbidden(ApiError):
    status = 403


class Withheld(Forbidden):
    """Readings of personal devices asked for one device, or of fewer than k."""


class NotFound(ApiError):
    status = 404


class NotAcceptable(ApiError):
    status = 406


class Conflict(ApiError):
    status = 409


class Gone(ApiError):
    status = 410


class Unprocessable(ApiError):
    status = 422


class TooManyRequests(ApiError):
    """Over a limit; `retry_after` is the whole seconds until it resets."""

    status = 429

    def __init__(self, detail: str, *, retry_after: int) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class ServiceUnavailable(ApiError):
    status = 503
