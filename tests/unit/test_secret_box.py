"""Masking passwords in git URLs (DESIGN section 11)."""

from __future__ import annotations

import pytest

from syncopate.manager.secret_box import mask_any_url, mask_in, mask_url, url_password


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://u:p4ss@host/x.git", "https://u:***@host/x.git"),
        ("https://u:p:a@ss@host:8443/x.git", "https://u:***@host:8443/x.git"),
        ("http://:tok@host/x", "http://:***@host/x"),
        ("https://user@host/x.git", "https://user@host/x.git"),
        ("https://host/x.git", "https://host/x.git"),
        ("git@github.com:team/x.git", "git@github.com:team/x.git"),
        ("file:///srv/x.git", "file:///srv/x.git"),
        ("/srv/x.git", "/srv/x.git"),
    ],
)
def test_mask_url(url: str, shown: str) -> None:
    assert mask_url(url) == shown
    password = url_password(url)
    assert password is None or password not in mask_url(url)


def test_mask_in_replaces_the_password_wherever_it_is_quoted() -> None:
    url = "https://u:s3cret@host/x.git"
    assert mask_in(f"fatal: '{url}' and s3cret", url) == "fatal: 'https://u:***@host/x.git' and ***"
    assert mask_in("no url here", "https://host/x.git") == "no url here"


def test_mask_in_replaces_secret_values_but_not_short_ones() -> None:
    secrets = {"KEY": "abcd1234", "LONGER": "abcd1234-and-more", "FLAG": "on"}
    line = "key abcd1234, longer abcd1234-and-more, flag on"
    assert mask_in(line, "https://host/x.git", secrets) == "key ***, longer ***, flag on"


def test_a_fleet_of_project_urls_stays_cached() -> None:
    """Every report and answer asks for each project's URL masked: a fleet's worth of distinct
    URLs (10,000 here) must fit the cache, or round-robin reports miss every time."""
    mask_url.cache_clear()
    url_password.cache_clear()
    urls = [f"https://user:pw{i}@example.com/p-{i}.git" for i in range(10_000)]
    for _ in range(2):
        for url in urls:
            mask_url(url)
    info = mask_url.cache_info()
    assert info.misses == len(urls) and info.hits == len(urls)


def test_a_url_someone_sent_is_masked_without_filling_the_caches() -> None:
    """A node or a controller may send any URL (refused as a mismatch): masked uncached, so
    nobody fills the fleet-sized caches with URLs of their own."""
    mask_url.cache_clear()
    url_password.cache_clear()
    assert mask_any_url("https://u:secret@example.com/x.git") == "https://u:***@example.com/x.git"
    assert mask_url.cache_info().currsize == 0 and url_password.cache_info().currsize == 0
