"""WWW-Authenticate challenges and token answers of registries (core.ci.challenge)."""

from __future__ import annotations

import json

import pytest

from core.ci.challenge import (
    Challenge,
    parse_challenges,
    parse_token_answer,
    preferred,
    repository_scope,
)
from core.errors import ConfigError

DISTRIBUTION = (  # what distribution 2.8 sends for a manifest, byte for byte
    'Bearer realm="http://127.0.0.1:5003/token",service="kyb-token-registry",'
    'scope="repository:kyb/api:pull",error="insufficient_scope"'
)


def test_distribution_bearer_challenge() -> None:
    [challenge] = parse_challenges(DISTRIBUTION)
    assert challenge.scheme == "bearer"
    assert challenge.realm == "http://127.0.0.1:5003/token"
    assert challenge.service == "kyb-token-registry"
    assert challenge.scopes == ["repository:kyb/api:pull"]
    assert challenge.params["error"] == "insufficient_scope"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ('Basic realm="kyb-registry"', [Challenge("basic", {"realm": "kyb-registry"})]),
        ("BASIC Realm=r", [Challenge("basic", {"realm": "r"})]),  # case-insensitive, token value
        (  # GHCR's, with spaces around = and after commas
            'Bearer realm = "https://ghcr.io/token", service="ghcr.io" , scope="a:b:pull"',
            [
                Challenge(
                    "bearer",
                    {"realm": "https://ghcr.io/token", "service": "ghcr.io", "scope": "a:b:pull"},
                )
            ],
        ),
        (  # two challenges in one header value
            'Basic realm="x", Bearer realm="https://t/token",service="s"',
            [
                Challenge("basic", {"realm": "x"}),
                Challenge("bearer", {"realm": "https://t/token", "service": "s"}),
            ],
        ),
        (  # quoted commas and escapes stay inside the value
            r'Bearer realm="https://t/a,b",scope="repository:x:pull,push",note="say \"hi\""',
            [
                Challenge(
                    "bearer",
                    {
                        "realm": "https://t/a,b",
                        "scope": "repository:x:pull,push",
                        "note": 'say "hi"',
                    },
                )
            ],
        ),
        ("Negotiate abc123==", [Challenge("negotiate")]),  # token68: no parameters
        ("", []),
        ("   ,  ", []),
    ],
)
def test_parse_challenges(header: str, expected: list[Challenge]) -> None:
    assert parse_challenges(header) == expected


def test_several_header_values_and_several_scopes() -> None:
    values = [
        'Basic realm="r"',
        'Bearer realm="https://t",scope="repository:a:pull registry:catalog:*"',
    ]
    basic, bearer = parse_challenges(values)
    assert basic.scheme == "basic" and bearer.scopes == ["repository:a:pull", "registry:catalog:*"]


def test_bearer_is_preferred_over_basic_and_unknown_schemes_are_not_answered() -> None:
    both = parse_challenges('Basic realm="x", Bearer realm="https://t"')
    assert preferred(both) == Challenge("bearer", {"realm": "https://t"})
    assert preferred(parse_challenges('Basic realm="x"')) == Challenge("basic", {"realm": "x"})
    assert preferred(parse_challenges("Negotiate abc, Digest realm=x")) is None
    assert preferred([]) is None


def test_repository_scope() -> None:
    assert repository_scope("kyb/api") == "repository:kyb/api:pull"
    assert repository_scope("kyb/api", "pull,push") == "repository:kyb/api:pull,push"


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ({"token": "t1", "expires_in": 300}, ("t1", 300)),
        ({"access_token": "t2"}, ("t2", 60)),  # OAuth2 name; expires_in defaults to 60 s
        ({"token": "t3", "access_token": "other", "expires_in": 0}, ("t3", 60)),
        ({"token": "t4", "expires_in": "300"}, ("t4", 60)),
    ],
)
def test_token_answer(answer: dict, expected: tuple[str, int]) -> None:
    assert parse_token_answer(json.dumps(answer).encode(), "https://t/token") == expected


@pytest.mark.parametrize(
    ("body", "text"),
    [
        (b"<html>login</html>", "not JSON"),
        (b'{"token": ""}', "without a token"),
        (b'{"details": "x"}', "without a token"),
        (b'["t"]', "without a token"),
        (b'{"token": "a b"}', "without a token"),
    ],
)
def test_token_answer_without_a_token_names_the_service(body: bytes, text: str) -> None:
    with pytest.raises(ConfigError, match=text) as info:
        parse_token_answer(body, "https://t/token")
    assert "https://t/token" in str(info.value)
