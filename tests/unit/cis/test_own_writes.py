from __future__ import annotations

from cis.controller.echoes import OwnWrites

KEY = "tenant-acme/ci-a"


def test_the_event_of_our_own_write_is_an_echo_once() -> None:
    own = OwnWrites()
    own.wrote(KEY, "42")
    assert own.is_echo("MODIFIED", KEY, "42")
    assert not own.is_echo("MODIFIED", KEY, "42")  # a second delivery is not swallowed
    assert len(own) == 0


def test_another_version_is_news_and_settles_the_key() -> None:
    own = OwnWrites()
    own.wrote(KEY, "42")
    assert not own.is_echo("MODIFIED", KEY, "43")
    assert len(own) == 0


def test_deletion_and_other_instances_are_news() -> None:
    own = OwnWrites()
    own.wrote(KEY, "42")
    own.wrote("tenant-acme/ci-b", "7")
    assert not own.is_echo("DELETED", KEY, "42")
    assert not own.is_echo("MODIFIED", "tenant-acme/ci-c", "7")
    assert own.is_echo("MODIFIED", "tenant-acme/ci-b", "7")


def test_the_latest_write_counts_and_empty_versions_are_ignored() -> None:
    own = OwnWrites()
    own.wrote(KEY, "42")
    own.wrote(KEY, "44")
    own.wrote("tenant-acme/ci-b", None)
    assert not own.is_echo("MODIFIED", KEY, "42") and len(own) == 0
    assert not own.is_echo("MODIFIED", "tenant-acme/ci-b", None)
