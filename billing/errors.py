"""Errors raised by the billing package.

`billing` never imports `cis`, so it has its own small tree. Each class names the CIS error
it corresponds to (`InvalidInput` → 400/422, `NotFound` → 404, `Temporary` → 503) so the
single error-mapping middleware in `cis` can translate by isinstance without knowing the
billing internals.
"""

from __future__ import annotations


class BillingError(Exception):
    """Base of every error the billing package raises on purpose."""


class InvalidInput(BillingError, ValueError):
    """Input from a user or a config file is wrong; `field` names the offending part."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.message = message
        self.field = field


class PriceConfigError(InvalidInput):
    """The price table configuration is malformed (raised while loading, never later)."""


class NoPrice(InvalidInput):
    """No price is configured for a region at a point in time."""


class InvalidEvent(InvalidInput):
    """A lifecycle event document does not match the DESIGN section 4 contract."""


class NotFound(BillingError):
    """Something asked for does not exist (for example an unknown region in a quote)."""


class Temporary(BillingError):
    """Elasticsearch is unreachable or overloaded; retrying later may succeed."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Permanent(BillingError):
    """Elasticsearch rejected a request in a way retrying will not fix (bad mapping, ...)."""
