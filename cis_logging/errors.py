"""Errors raised by the `cis_logging` package.

`cis_logging` never imports `cis`, so it has its own small tree, shaped like the CIS one:
`InvalidParameter` → 400/422, `NotFound` → 404, `Unavailable` → 503. The single
error-mapping middleware in `cis` translates them by isinstance.
"""

from __future__ import annotations


class LoggingError(Exception):
    """Base of every error `cis_logging` raises on purpose."""


class InvalidParameter(LoggingError, ValueError):
    """A parameter (template parameter, query option, CLI flag) is wrong.

    `field` names the offending parameter exactly as the caller spelled it, so a REST
    handler can put it in its JSON error and a CLI can print it.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class NotFound(LoggingError):
    """What was asked for does not exist (e.g. no previous run of a container)."""


class Unavailable(LoggingError):
    """Elasticsearch is unreachable or overloaded; retrying later may succeed."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RenderError(LoggingError):
    """A template produced text that is not valid YAML: a bug in `cis_logging`, not input."""
