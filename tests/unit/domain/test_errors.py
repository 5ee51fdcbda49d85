from __future__ import annotations

import pytest

from cis.domain.errors import (
    ALL_ERRORS,
    CisError,
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    NotImplementedCapability,
    Permanent,
    QuotaExceeded,
    RateLimited,
    Temporary,
    Unauthenticated,
)


@pytest.mark.parametrize(
    ("error", "code", "http"),
    [
        (InvalidInput("containers[0].image", "bad"), "invalid_input", 400),
        (Unauthenticated(), "unauthenticated", 401),
        (Forbidden("admin only"), "forbidden", 403),
        (NotFound("instance", "ci-x"), "not_found", 404),
        (Conflict("token reused"), "conflict", 409),
        (QuotaExceeded("vcpu", "over"), "quota_exceeded", 403),
        (RateLimited(1.2), "rate_limited", 429),
        (Temporary("etcd down", 5), "unavailable", 503),
        (Permanent("broken"), "permanent_failure", 500),
        (NotImplementedCapability("no Elasticsearch"), "not_implemented", 501),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, CisError) else str(v),
)
def test_codes_and_statuses(error: CisError, code: str, http: int) -> None:
    assert error.code == code and error.http_status == http
    body = error.to_json()["error"]
    assert body["code"] == code and body["message"]


def test_codes_are_unique() -> None:
    codes = [cls.code for cls in ALL_ERRORS]
    assert len(codes) == len(set(codes))


def test_invalid_input_carries_the_field() -> None:
    err = InvalidInput("containers[0].resources.cpu", "must be greater than 0")
    assert err.to_json() == {
        "error": {
            "code": "invalid_input",
            "message": "containers[0].resources.cpu: must be greater than 0",
            "field": "containers[0].resources.cpu",
        }
    }


@pytest.mark.parametrize(
    ("retry_after", "header"),
    [(0.2, "1"), (1.0, "1"), (1.01, "2"), (-3, "1"), (float("inf"), "86400")],
    ids=["sub-second", "exact", "rounds-up", "negative", "infinite"],
)
def test_retry_after_header(retry_after: float, header: str) -> None:
    assert RateLimited(retry_after).retry_after_header() == header
    assert Temporary("x", retry_after).to_json()["error"]["retryAfterSeconds"] == int(header)


def test_temporary_without_retry_after() -> None:
    assert Temporary("x").retry_after_header() is None
    assert "retryAfterSeconds" not in Temporary("x").to_json()["error"]
