"""Digest authentication: RFC test vectors, header syntax, client and server."""

from __future__ import annotations

import functools
import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from telephony.errors import AuthenticationError, SipParseError
from telephony.sip.auth import (
    AuthParam,
    DigestAuthorization,
    DigestChallenge,
    DigestClient,
    DigestCredentials,
    DigestServer,
    VerifyStatus,
    digest_response,
    parse_challenges,
    select_challenge,
)

# RFC 7616 3.9.1: the two WWW-Authenticate headers of the example.
RFC7616_CHALLENGES = [
    (
        'Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm=SHA-256, '
        'nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", '
        'opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"'
    ),
    (
        'Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm=MD5, '
        'nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", '
        'opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"'
    ),
]
RFC7616_CNONCE = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"
RFC7616_MD5 = "8ca523f5e9506fed4657c9700eebdbec"
RFC7616_SHA256 = "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
MUFASA = DigestCredentials("Mufasa", "Circle of Life")


def fixed(value: str):  # type: ignore[no-untyped-def]
    return lambda: value


# The MD5 digest response for the client tests' credentials (bob / pw in realm "r").
bob_md5_response = functools.partial(digest_response, algorithm="MD5", username="bob",
                                     password="pw", realm="r")


@pytest.mark.parametrize(
    ("algorithm", "expected"), [("MD5", RFC7616_MD5), ("SHA-256", RFC7616_SHA256)]
)
def test_rfc7616_vectors(algorithm: str, expected: str) -> None:
    assert (
        digest_response(
            algorithm=algorithm,
            username="Mufasa",
            password="Circle of Life",
            realm="http-auth@example.org",
            nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
            method="GET",
            uri="/dir/index.html",
            qop="auth",
            nc=1,
            cnonce=RFC7616_CNONCE,
        )
        == expected
    )


def test_rfc7616_client_picks_sha256_and_matches_example() -> None:
    client = DigestClient(MUFASA, cnonce_source=fixed(RFC7616_CNONCE))
    value = client.authorize(RFC7616_CHALLENGES, method="GET", uri="/dir/index.html")
    creds = DigestAuthorization.parse(value)
    assert creds.algorithm == "SHA-256"
    assert creds.response == RFC7616_SHA256
    assert (creds.qop, creds.nc, creds.cnonce) == ("auth", 1, RFC7616_CNONCE)
    assert creds.opaque == "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"
    assert "nc=00000001" in value and "qop=auth" in value and "algorithm=SHA-256" in value
    # the MD5 challenge alone gives the MD5 example response
    md5 = DigestClient(MUFASA, cnonce_source=fixed(RFC7616_CNONCE))
    assert (
        DigestAuthorization.parse(
            md5.authorize(RFC7616_CHALLENGES[1], method="GET", uri="/dir/index.html")
        ).response
        == RFC7616_MD5
    )


def test_rfc2617_example() -> None:
    challenge = (
        'Digest realm="testrealm@host.com", qop="auth,auth-int", '
        'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", '
        'opaque="5ccc069c403ebaf9f0171e9517f40e41"'
    )
    client = DigestClient(
        DigestCredentials("Mufasa", "Circle Of Life"), cnonce_source=fixed("0a4f113b")
    )
    value = client.authorize(challenge, method="GET", uri="/dir/index.html")
    assert DigestAuthorization.parse(value).response == "6629fae49393a05397450978507c4ef1"
    # RFC 2617 3.5 Authorization header, parsed and checked field by field
    example = DigestAuthorization.parse(
        'Digest username="Mufasa", realm="testrealm@host.com", '
        'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", uri="/dir/index.html", qop=auth, '
        'nc=00000001, cnonce="0a4f113b", response="6629fae49393a05397450978507c4ef1", '
        'opaque="5ccc069c403ebaf9f0171e9517f40e41"'
    )
    assert (example.nc, example.qop, example.cnonce) == (1, "auth", "0a4f113b")
    assert [p.name for p in example.params][:4] == ["username", "realm", "nonce", "uri"]


def test_several_challenges_in_one_header_and_other_schemes() -> None:
    header = (
        'Basic realm="x", Digest realm="r", nonce="n1", algorithm=MD5, '
        'Digest realm="r", nonce="n2", algorithm=SHA-256, qop="auth", '
        'Negotiate abc123==, Digest realm="r", nonce="n3", algorithm=FOO'
    )
    found = parse_challenges(header)
    assert [(c.nonce, c.algorithm) for c in found] == [
        ("n1", "MD5"),
        ("n2", "SHA-256"),
        ("n3", "FOO"),
    ]
    assert select_challenge(found).nonce == "n2"
    assert not found[2].supported
    with pytest.raises(AuthenticationError, match="no supported"):
        select_challenge([found[2]])
    with pytest.raises(AuthenticationError):
        select_challenge(found, realm="other")


def test_sha512_256_preferred_when_available() -> None:
    found = parse_challenges(
        [
            'Digest realm="r", nonce="a", algorithm=SHA-256',
            'Digest realm="r", nonce="b", algorithm=SHA-512-256',
            'Digest realm="r", nonce="c"',
        ]
    )
    best = select_challenge(found)
    assert best.nonce in ("a", "b")
    if best.nonce == "b":  # hashlib has sha512_256: check the RFC 7616 3.9.2 style computation
        value = digest_response(
            algorithm="SHA-512-256",
            username="u",
            password="p",
            realm="r",
            nonce="b",
            method="REGISTER",
            uri="sip:r",
            qop="auth",
            nc=1,
            cnonce="c",
        )
        assert len(value) == 64


def test_quoting_escapes_and_round_trip() -> None:
    header = (
        r'Digest realm="a \"quoted\" realm\\", nonce="x,y=z", stale=TRUE, '
        r'algorithm="sha-256-sess", domain="sip:a sip:b"'
    )
    challenge = DigestChallenge.parse(header)
    assert challenge.realm == 'a "quoted" realm\\'
    assert challenge.nonce == "x,y=z"
    assert challenge.stale is True
    assert challenge.algorithm == "SHA-256-sess"
    assert challenge.domain == "sip:a sip:b"
    assert [p.name for p in challenge.params] == ["realm", "nonce", "stale", "algorithm", "domain"]
    assert challenge.serialize() == header
    assert DigestChallenge.parse(challenge.serialize()) == challenge
    assert AuthParam("realm", 'a"b\\', True).serialize() == r'realm="a\"b\\"'


def test_lenient_whitespace_and_unquoted_nonce() -> None:
    challenge = DigestChallenge.parse('Digest   realm = "r" ,nonce=abc+/=,qop="auth"  ')
    assert (challenge.realm, challenge.nonce, challenge.qop) == ("r", "abc+/=", ("auth",))
    assert challenge.serialize() == 'Digest realm="r", nonce=abc+/=, qop="auth"'
    sparse = DigestChallenge.parse('Digest realm="r", , nonce="n",')
    assert (sparse.realm, sparse.nonce) == ("r", "n")


@pytest.mark.parametrize(
    "header",
    [
        'Digest realm="r", nonce="n',
        'Digest realm="r"',
        'Digest realm="r", realm="s", nonce="n"',
        'Digest realm="r" nonce="n"',
        'Digest realm=, nonce="n"',
        '"Digest" realm="r"',
        'Digest realm="r", nonce="n", =x',
    ],
)
def test_challenge_syntax_errors(header: str) -> None:
    with pytest.raises(SipParseError):
        parse_challenges(header)


@pytest.mark.parametrize(
    "header",
    [
        "Basic dXNlcjpwYXNz",
        'Digest realm="r", nonce="n", uri="u", response="x"',
        'Digest username="u", realm="r", nonce="n", uri="u", response="x", nc=1',
        'Digest username="u", realm="r", nonce="n", uri="u", response="x", nc=0000000g',
        'Digest username="u", realm="r", nonce="n", uri="u", response="x", Digest a=b',
    ],
)
def test_credentials_syntax_errors(header: str) -> None:
    with pytest.raises(SipParseError):
        DigestAuthorization.parse(header)


def test_nonce_count_increments_per_nonce() -> None:
    counter = itertools.count(1)
    client = DigestClient(DigestCredentials("bob", "pw"), cnonce_source=lambda: f"c{next(counter)}")
    first = client.authorize(
        'Digest realm="r", nonce="N1", qop="auth"', method="REGISTER", uri="sip:r"
    )
    assert DigestAuthorization.parse(first).nc == 1
    again = client.authorize_again(method="INVITE", uri="sip:x@r")
    assert again is not None
    creds = DigestAuthorization.parse(again)
    assert (creds.nc, creds.cnonce, creds.nonce) == (2, "c2", "N1")
    assert creds.response == bob_md5_response(
        nonce="N1",
        method="INVITE",
        uri="sip:x@r",
        qop="auth",
        nc=2,
        cnonce="c2",
    )
    other = client.authorize(
        'Digest realm="r", nonce="N2", qop="auth"', method="REGISTER", uri="sip:r"
    )
    assert DigestAuthorization.parse(other).nc == 1
    assert client.authorize_again(method="BYE", uri="sip:r", realm="nowhere") is None
    client.reset()
    assert client.authorize_again(method="BYE", uri="sip:r") is None


def test_loop_detection() -> None:
    client = DigestClient(DigestCredentials("bob", "bad"), cnonce_source=fixed("c"))
    challenge = 'Digest realm="r", nonce="N1", qop="auth"'
    client.authorize(challenge, method="REGISTER", uri="sip:r")
    with pytest.raises(AuthenticationError, match="rejected"):
        client.authorize(challenge, method="REGISTER", uri="sip:r")
    # stale=true with the same nonce is not a rejection (RFC 7616 3.3)
    client.authorize(challenge + ", stale=true", method="REGISTER", uri="sip:r")


def test_qop_choice_auth_int_and_rfc2069() -> None:
    client = DigestClient(DigestCredentials("bob", "pw"), cnonce_source=fixed("cn"))
    body = b"v=0\r\n"
    value = client.authorize(
        'Digest realm="r", nonce="a", qop="auth-int"', method="INVITE", uri="sip:x@r", body=body
    )
    creds = DigestAuthorization.parse(value)
    assert creds.qop == "auth-int"
    assert creds.response == bob_md5_response(
        nonce="a",
        method="INVITE",
        uri="sip:x@r",
        qop="auth-int",
        nc=1,
        cnonce="cn",
        body=body,
    )
    assert creds.response != bob_md5_response(
        nonce="a",
        method="INVITE",
        uri="sip:x@r",
        qop="auth-int",
        nc=1,
        cnonce="cn",
    )
    old = DigestAuthorization.parse(
        client.authorize('Digest realm="r", nonce="b"', method="INVITE", uri="sip:x@r")
    )
    assert (old.qop, old.nc, old.cnonce) == (None, None, None)
    with pytest.raises(AuthenticationError, match="qop"):
        client.authorize('Digest realm="r", nonce="c", qop="foo"', method="INVITE", uri="sip:x@r")


def test_realm_bound_credentials() -> None:
    client = DigestClient(DigestCredentials("bob", "pw", realm="mine"))
    with pytest.raises(AuthenticationError):
        client.authorize('Digest realm="theirs", nonce="a"', method="INVITE", uri="sip:x")
    with pytest.raises(AuthenticationError):
        client.authorize(
            DigestChallenge.parse('Digest realm="theirs", nonce="a"'), method="INVITE", uri="sip:x"
        )
    assert "mine" in client.authorize(
        ['Digest realm="theirs", nonce="a"', 'Digest realm="mine", nonce="b"'],
        method="INVITE",
        uri="sip:x",
    )


# --- server -------------------------------------------------------------------------------

USERS = {"alice": "wonderland", "bob": "builder"}


def make_server(**kw: object) -> DigestServer:
    args: dict[str, object] = {
        "nonce_secret": b"k" * 32,
        "nonce_ttl": 60.0,
        "salt_source": lambda n: b"\x01" * n,
    }
    args.update(kw)
    return DigestServer("dialtone.test", USERS.get, **args)  # type: ignore[arg-type]


def test_server_challenge_headers() -> None:
    server = make_server(opaque="op")
    values = server.challenge(now=1000.0)
    parsed = [DigestChallenge.parse(v) for v in values]
    assert [c.algorithm for c in parsed] == ["SHA-256", "MD5"]
    assert parsed[0].nonce == parsed[1].nonce
    assert all(c.qop == ("auth",) and c.opaque == "op" and not c.stale for c in parsed)
    assert values[0].startswith('Digest realm="dialtone.test", nonce="')
    assert DigestChallenge.parse(server.challenge(now=1.0, stale=True)[0]).stale


@pytest.mark.parametrize("algorithm", ["MD5", "SHA-256", "MD5-sess", "SHA-256-sess"])
def test_server_accepts_client(algorithm: str) -> None:
    server = make_server(algorithms=(algorithm,))
    client = DigestClient(DigestCredentials("alice", "wonderland"))
    value = client.authorize(server.challenge(now=100.0), method="INVITE", uri="sip:ivr@127.0.0.1")
    result = server.verify(value, method="INVITE", uri="sip:ivr@127.0.0.1", now=130.0)
    assert result.ok and result.username == "alice" and result.status is VerifyStatus.OK
    again = client.authorize_again(method="OPTIONS", uri="sip:ivr@127.0.0.1")
    assert again is not None
    assert server.verify(again, method="OPTIONS", uri="sip:ivr@127.0.0.1", now=131.0).ok


def test_server_stale_then_recovers() -> None:
    server = make_server()
    client = DigestClient(DigestCredentials("bob", "builder"))
    value = client.authorize(server.challenge(now=0.0), method="REGISTER", uri="sip:dialtone.test")
    result = server.verify(value, method="REGISTER", uri="sip:dialtone.test", now=61.0)
    assert result.status is VerifyStatus.STALE and result.username == "bob"
    # a nonce from the future (clock went back) is stale too, never OK
    future = client.authorize(
        server.challenge(now=500.0), method="REGISTER", uri="sip:dialtone.test"
    )
    assert (
        server.verify(future, method="REGISTER", uri="sip:dialtone.test", now=400.0).status
        is VerifyStatus.STALE
    )
    fresh = client.authorize(
        server.challenge(now=61.0, stale=True), method="REGISTER", uri="sip:dialtone.test"
    )
    assert server.verify(fresh, method="REGISTER", uri="sip:dialtone.test", now=62.0).ok


def test_server_rejections() -> None:
    server = make_server(opaque="op")
    uri = "sip:ivr@127.0.0.1"
    good = DigestClient(DigestCredentials("alice", "wonderland")).authorize(
        server.challenge(now=0.0), method="INVITE", uri=uri
    )
    assert server.verify(good, method="INVITE", uri=uri, now=1.0).ok

    def reason(value: str, **kw: object) -> str:
        args: dict[str, object] = {"method": "INVITE", "uri": uri, "now": 1.0}
        args.update(kw)
        result = server.verify(value, **args)  # type: ignore[arg-type]
        assert result.status is VerifyStatus.BAD
        return result.reason

    wrong_pw = DigestClient(DigestCredentials("alice", "nope")).authorize(
        server.challenge(now=0.0), method="INVITE", uri=uri
    )
    assert reason(wrong_pw) == "wrong response"
    assert reason(good, method="BYE") == "wrong response"
    assert "uri" in reason(good, uri="sip:other@127.0.0.1")
    unknown = DigestClient(DigestCredentials("mallory", "x")).authorize(
        server.challenge(now=0.0), method="INVITE", uri=uri
    )
    assert reason(unknown) == "unknown user"
    forged = good.replace(DigestAuthorization.parse(good).nonce, "A" * 43)
    assert reason(forged) == "nonce not issued by us"
    other_secret = make_server(nonce_secret=b"z" * 32, opaque="op")
    assert (
        other_secret.verify(good, method="INVITE", uri=uri, now=1.0).reason
        == "nonce not issued by us"
    )
    assert "realm" in reason(good.replace('realm="dialtone.test"', 'realm="x"'))
    assert "opaque" in reason(good.replace('opaque="op"', 'opaque="no"'))
    assert "qop" in reason(good.replace(", qop=auth", ""))
    assert "not offered" in reason(good.replace("algorithm=SHA-256", "algorithm=MD5-sess"))
    assert "malformed" in reason('Digest username="alice"')
    assert "malformed" in reason('garbage \x00 "')


def test_server_config_errors() -> None:
    with pytest.raises(AuthenticationError):
        make_server(nonce_secret=b"")
    with pytest.raises(AuthenticationError):
        make_server(algorithms=("SHA-1",))


_HEADER_TEXT = st.text(
    alphabet=st.sampled_from(list('Digest realm=nonce"\\,  =abcAuth-qop\t')), max_size=60
)


@settings(max_examples=300, deadline=None)
@given(_HEADER_TEXT)
def test_fuzz_parsers_raise_only_parse_errors(text: str) -> None:
    try:
        for challenge in parse_challenges(text):
            assert DigestChallenge.parse(challenge.serialize()) == challenge
    except SipParseError:
        pass
    try:
        DigestAuthorization.parse(text)
    except SipParseError:
        pass
    result = make_server().verify(text, method="INVITE", uri="sip:x", now=0.0)
    assert result.status is VerifyStatus.BAD


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=20), st.text(max_size=20), st.text(min_size=1, max_size=20))
def test_fuzz_round_trip_any_username_and_realm(username: str, password: str, realm: str) -> None:
    server = DigestServer(realm, {username: password}.get, nonce_secret=b"s", algorithms=("MD5",))
    client = DigestClient(DigestCredentials(username, password))
    value = client.authorize(server.challenge(now=5.0), method="MESSAGE", uri="sip:x")
    assert server.verify(value, method="MESSAGE", uri="sip:x", now=6.0).ok
