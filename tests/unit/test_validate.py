"""Names, git URLs and variables text."""

from __future__ import annotations

import json

import pytest

from syncopate import variables
from syncopate.validate import check_git_url, check_name


@pytest.mark.parametrize("name", ["a", "counter", "A1", "web-app_2.0", "x" * 64, "0"])
def test_good_names(name: str) -> None:
    assert check_name(name) == name


@pytest.mark.parametrize(
    "name", ["", "../../etc", ".hidden", "-rf", "a/b", "a b", "x" * 65, "_x", "é", "a\n"]
)
def test_bad_names(name: str) -> None:
    with pytest.raises(ValueError, match="not valid"):
        check_name(name)


@pytest.mark.parametrize(
    "url",
    [
        "https://github.com/user/repo.git",
        "http://gitea.local:3000/u/r",
        "ssh://git@host:22/r.git",
        "git://host/r.git",
        "file:///srv/git/r.git",
        "git@github.com:user/repo.git",
        "host:path/repo",
        "/srv/git/repo",
    ],
)
def test_good_urls(url: str) -> None:
    assert check_git_url(url) == url


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("ext::sh -c touch% /tmp/pwned", "ext::"),
        ("ext::sh", "transport"),
        ("fd::17", "transport"),
        ("-uhttps://x", "start with '-'"),
        ("--upload-pack=touch /tmp/x", "start with '-'"),
        ("ftp://host/x", "scheme"),
        ("https://", "no host"),
        ("file://relative/path", "absolute"),
        ("https://host/x\nmore", "whitespace"),
        ("relative/path", "not one of"),
        ("", "empty"),
    ],
)
def test_bad_urls(url: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        check_git_url(url)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ('{"count": 3}', {"count": 3}),
        ("{'count': 3, 'name': 'x'}", {"count": 3, "name": "x"}),
        ("{'t': (1, 2)}", {"t": [1, 2]}),
        ("  {}  ", {}),
    ],
)
def test_variables_parse(text: str, value: dict[str, object]) -> None:
    assert variables.parse(text) == value


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("[1, 2]", "must be an object"),
        ("{'a': 1", "not a JSON object"),
        ("__import__('os').system('true')", "not a JSON object"),
        ("{1: 2}", "names must be strings"),
        ("", "empty"),
        ('{"a": "' + "x" * 70_000 + '"}', "64 KiB"),
    ],
)
def test_variables_parse_refuses(text: str, why: str) -> None:
    with pytest.raises(variables.VariablesError, match=why):
        variables.parse(text)


def test_variables_save_then_load(tmp_path: object) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "project.variables"
    variables.save({"count": 7}, path)
    assert variables.load(path) == {"count": 7}
    assert [p.name for p in path.parent.iterdir()] == ["project.variables"]


def test_variables_load_absent_is_empty(tmp_path: object) -> None:
    from pathlib import Path

    assert variables.load(Path(str(tmp_path)) / "nothing") == {}


def test_variables_are_sized_as_the_utf8_json_they_are_stored_as() -> None:
    """orjson sizes them on the hot path; what it refuses (an integer beyond 64 bits) is sized
    by the standard library the same way: UTF-8, not \\u escapes."""
    text = "caf\u00e9 \u6f22\u5b57 \U0001f600"
    for value in ({"t": text}, {"n": 2**70, "t": text}):
        assert variables.encoded_size(value) == len(
            json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
        )
    # Just under and just over the limit with a big integer and non-ASCII text.
    wide = "\u6f22" * ((variables.MAX_BYTES - 40) // 3)
    variables.check_size({"n": 2**70, "t": wide})
    with pytest.raises(variables.VariablesTooLarge):
        variables.check_size({"n": 2**70, "t": wide + "\u6f22" * 20})


def test_variables_with_a_lone_surrogate_are_refused() -> None:
    """No file could hold them (the node writes UTF-8): refused as before, not stored."""
    with pytest.raises(ValueError):
        variables.check_size({"t": "\ud800"})
