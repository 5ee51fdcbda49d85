"""Paging instances out of a cache the way an apiserver pages a list."""

from __future__ import annotations

from typing import Any

import pytest

from cis.domain import errors
from cis.domain.listing import ListQuery, decode_continue, encode_continue, select_page
from cis.domain.selectors import parse_label_selector


def cr(ns: str, name: str, phase: str = "Running", region: str = "region-a", **labels: str) -> dict[str, Any]:
    return {"metadata": {"namespace": ns, "name": name, "labels": labels},
            "status": {"phase": phase, "region": region}}


def cache(*objs: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f"{o['metadata']['namespace']}/{o['metadata']['name']}": o for o in objs}


def names(page: list[dict[str, Any]]) -> list[str]:
    return [o["metadata"]["name"] for o in page]


def test_pages_are_ordered_by_key_and_chain_through_continue_tokens() -> None:
    objs = cache(*(cr("tenant-acme", f"ci-{i:02d}") for i in (5, 1, 3, 2, 4)))
    seen, after = [], None
    while True:
        page, token = select_page(objs, ListQuery(namespace="tenant-acme", limit=2, after=after))
        seen.append(names(page))
        if token is None:
            break
        after = decode_continue(token)
    assert seen == [["ci-01", "ci-02"], ["ci-03", "ci-04"], ["ci-05"]]


def test_a_full_last_page_has_no_token_to_an_empty_page() -> None:
    objs = cache(cr("tenant-acme", "a"), cr("tenant-acme", "b"), cr("tenant-acme", "c", phase="Queued"))
    page, token = select_page(objs, ListQuery(namespace="tenant-acme", phase="Running", limit=2))
    assert names(page) == ["a", "b"] and token is None


def test_a_tenant_sees_only_its_namespace_and_an_admin_sees_all() -> None:
    objs = cache(cr("tenant-acme", "a"), cr("tenant-acme2", "b"), cr("tenant-globex", "c"))
    assert names(select_page(objs, ListQuery(namespace="tenant-acme"))[0]) == ["a"]
    assert names(select_page(objs, ListQuery())[0]) == ["a", "b", "c"]


def test_phase_region_and_label_filters_combine() -> None:
    objs = cache(
        cr("tenant-acme", "a", app="web"),
        cr("tenant-acme", "b", region="region-b", app="web"),
        cr("tenant-acme", "c", phase="Queued", app="web"),
        cr("tenant-acme", "d", app="db"),
    )
    query = ListQuery(namespace="tenant-acme", phase="Running", region="region-a",
                      selector=parse_label_selector("app in (web)", "labels"))
    assert names(select_page(objs, query)[0]) == ["a"]


def test_an_object_without_status_matches_only_unfiltered_lists() -> None:
    objs = {"tenant-acme/new": {"metadata": {"namespace": "tenant-acme", "name": "new"}}}
    assert names(select_page(objs, ListQuery())[0]) == ["new"]
    assert select_page(objs, ListQuery(phase="Queued"))[0] == []


@pytest.mark.parametrize("token", ["", "not-base64!", "eyJ2IjoxfQ", encode_continue("")[:-1] + "A"])
def test_a_foreign_or_garbled_token_is_invalid_input_on_continue(token: str) -> None:
    with pytest.raises(errors.InvalidInput) as err:
        decode_continue(token)
    assert err.value.field == "continue"


def test_tokens_round_trip_keys_with_any_characters() -> None:
    key = "tenant-acme/ci-0abc_é"
    assert decode_continue(encode_continue(key)) == key
