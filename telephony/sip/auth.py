"""SIP digest authentication (RFC 3261 22, RFC 7616, RFC 8760): sans-IO and pure.

Works on header *values* (strings), never on SIP messages, so it depends on no other
SIP module.  The client answers ``WWW-Authenticate``/``Proxy-Authenticate`` challenges
with an ``Authorization``/``Proxy-Authorization`` value; the server issues stateless
nonces (timestamp + salt + HMAC) and verifies credentials.  Time comes in as ``now``;
randomness through injectable sources so tests are deterministic.

The server side also defends itself (issue 12 finding 6): nonces are bound to the source
address they were issued to, each (nonce, cnonce) must count up (a replayed Authorization
is refused, RFC 7616 3.4 / 5.5), and a source that fails too often is locked out for a while
(:class:`AuthFailureLimiter`).

Malformed header syntax raises :class:`~telephony.errors.SipParseError` (status hint
400); refusing to authenticate (unsupported algorithm, loop) raises
:class:`~telephony.errors.AuthenticationError`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import struct
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import Enum

from telephony.errors import AuthenticationError, SipParseError

__all__ = [
    "SUPPORTED_ALGORITHMS",
    "AuthFailureLimiter",
    "AuthParam",
    "DigestAuthorization",
    "DigestChallenge",
    "DigestClient",
    "DigestCredentials",
    "DigestServer",
    "VerifyResult",
    "VerifyStatus",
    "digest_response",
    "parse_challenges",
    "select_challenge",
]


def _sha512_256(data: bytes) -> str:
    return hashlib.new("sha512_256", data).hexdigest()


def _has_sha512_256() -> bool:
    try:
        hashlib.new("sha512_256", b"")
    except ValueError:
        return False
    return True


# RFC 7616 3.2 / RFC 8760 2: algorithm name (without "-sess") -> hex hash function.
_HASHES: dict[str, Callable[[bytes], str]] = {
    "MD5": lambda data: hashlib.md5(data).hexdigest(),
    "SHA-256": lambda data: hashlib.sha256(data).hexdigest(),
}
if _has_sha512_256():
    _HASHES["SHA-512-256"] = _sha512_256
# RFC 8760 2.4: prefer the strongest algorithm offered.
_STRENGTH = {"MD5": 1, "SHA-256": 2, "SHA-512-256": 3}

SUPPORTED_ALGORITHMS: tuple[str, ...] = tuple(
    name for base in _HASHES for name in (base, f"{base}-sess")
)

# RFC 7230 3.2.6 tchar.
_TCHAR = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_WS = " \t"


def _split_algorithm(algorithm: str) -> tuple[str, bool]:
    """``"SHA-256-sess"`` -> (``"SHA-256"``, True); names are case-insensitive."""
    upper = algorithm.upper()
    if upper.endswith("-SESS"):
        return upper[:-5], True
    return upper, False


def _canonical_algorithm(algorithm: str) -> str:
    base, sess = _split_algorithm(algorithm)
    return f"{base}-sess" if sess else base


# --- header syntax ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AuthParam:
    """One ``name=value`` auth-param, remembering whether the value was quoted."""

    name: str
    value: str
    quoted: bool

    def serialize(self) -> str:
        """``name=value`` or ``name="value"`` with ``\\`` and ``"`` escaped (RFC 7230 3.2.6)."""
        if not self.quoted:
            return f"{self.name}={self.value}"
        escaped = self.value.replace("\\", "\\\\").replace('"', '\\"')
        return f'{self.name}="{escaped}"'


class _Scanner:
    """A cursor over one header value, for the RFC 7235 2.1 challenge/credentials grammar."""

    __slots__ = ("pos", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def at_end(self) -> bool:
        return self.pos >= len(self.text)

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def skip_ws(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] in _WS:
            self.pos += 1

    def token(self) -> str:
        start = self.pos
        while self.pos < len(self.text) and self.text[self.pos] in _TCHAR:
            self.pos += 1
        return self.text[start : self.pos]

    def quoted_string(self) -> str:
        """The unescaped content of a quoted-string starting at the cursor."""
        self.pos += 1  # opening quote
        out: list[str] = []
        while self.pos < len(self.text):
            char = self.text[self.pos]
            if char == "\\":
                if self.pos + 1 >= len(self.text):
                    break
                out.append(self.text[self.pos + 1])
                self.pos += 2
            elif char == '"':
                self.pos += 1
                return "".join(out)
            else:
                out.append(char)
                self.pos += 1
        raise SipParseError("unterminated quoted-string in auth header")


def _parse_auth_list(text: str) -> list[tuple[str, list[AuthParam]]]:
    """Split a header value into (scheme, params) challenges or credentials.

    RFC 7235 4.1: one header may carry several comma-separated challenges; a new
    one starts where a token is followed by something other than ``=``.
    """
    scan = _Scanner(text.strip())
    result: list[tuple[str, list[AuthParam]]] = []
    while True:
        while scan.peek() in (",", " ", "\t") and not scan.at_end():
            scan.pos += 1
        if scan.at_end():
            return result
        scheme = scan.token()
        if not scheme:
            raise SipParseError(f"expected an auth scheme at {scan.text[scan.pos :][:30]!r}")
        params: list[AuthParam] = []
        result.append((scheme, params))
        while True:
            scan.skip_ws()
            mark = scan.pos
            name = scan.token()
            scan.skip_ws()
            if not name and scan.peek() == ",":
                scan.pos += 1  # empty list element (RFC 7230 7): ignore it
                continue
            if not name or scan.peek() != "=":
                if name and not params:
                    # token68 (RFC 7235 2.1) of a scheme we do not interpret: skip it.
                    while not scan.at_end() and scan.peek() != ",":
                        scan.pos += 1
                    break
                scan.pos = mark
                if name:
                    break  # a token not followed by "=" starts the next challenge
                if scan.at_end():
                    break
                raise SipParseError(f"bad auth-param at {scan.text[scan.pos :][:30]!r}")
            scan.pos += 1
            scan.skip_ws()
            if scan.peek() == '"':
                params.append(AuthParam(name, scan.quoted_string(), True))
            else:
                # Be lenient with unquoted values: anything up to "," or whitespace
                # (some servers send base64 nonces unquoted).
                start = scan.pos
                while not scan.at_end() and scan.peek() not in ",\t ":
                    scan.pos += 1
                value = scan.text[start : scan.pos]
                if not value:
                    raise SipParseError(f"empty value for auth-param {name!r}")
                params.append(AuthParam(name, value, False))
            scan.skip_ws()
            if scan.at_end():
                break
            if scan.peek() != ",":
                raise SipParseError(f"expected ',' at {scan.text[scan.pos :][:30]!r}")
            scan.pos += 1


def _param_map(params: Sequence[AuthParam]) -> dict[str, str]:
    """Lower-cased names -> values; a repeated parameter is a syntax error (RFC 7616 3.3)."""
    result: dict[str, str] = {}
    for param in params:
        key = param.name.lower()
        if key in result:
            raise SipParseError(f"auth-param {param.name!r} repeated")
        result[key] = param.value
    return result


def _serialize(scheme: str, params: Sequence[AuthParam]) -> str:
    return f"{scheme} " + ", ".join(p.serialize() for p in params)


@dataclass(frozen=True, slots=True)
class DigestChallenge:
    """A ``Digest`` challenge from ``WWW-Authenticate``/``Proxy-Authenticate`` (RFC 7616 3.3)."""

    realm: str
    nonce: str
    algorithm: str = "MD5"
    """Canonical spelling: ``MD5``, ``SHA-256``, ``SHA-512-256``, with ``-sess`` if so."""
    qop: tuple[str, ...] = ()
    """Offered qop values (lower case); empty for an RFC 2069 style challenge."""
    opaque: str | None = None
    stale: bool = False
    domain: str | None = None
    userhash: bool = False
    params: tuple[AuthParam, ...] = ()
    """Every auth-param in header order, for faithful re-serialisation."""

    @classmethod
    def from_params(cls, params: Sequence[AuthParam]) -> DigestChallenge:
        """Build from parsed auth-params; needs realm and nonce."""
        values = _param_map(params)
        if "realm" not in values or "nonce" not in values:
            raise SipParseError("Digest challenge without realm or nonce")
        qop = tuple(q.strip().lower() for q in values.get("qop", "").split(",") if q.strip())
        return cls(
            realm=values["realm"],
            nonce=values["nonce"],
            algorithm=_canonical_algorithm(values.get("algorithm", "MD5")),
            qop=qop,
            opaque=values.get("opaque"),
            stale=values.get("stale", "").lower() == "true",
            domain=values.get("domain"),
            userhash=values.get("userhash", "").lower() == "true",
            params=tuple(params),
        )

    @classmethod
    def parse(cls, value: str) -> DigestChallenge:
        """Parse a header value holding exactly one Digest challenge."""
        found = parse_challenges(value)
        if len(found) != 1:
            raise SipParseError(f"expected one Digest challenge, found {len(found)}")
        return found[0]

    @classmethod
    def create(
        cls,
        *,
        realm: str,
        nonce: str,
        algorithm: str = "MD5",
        qop: Sequence[str] = ("auth",),
        opaque: str | None = None,
        stale: bool = False,
    ) -> DigestChallenge:
        """A challenge with the usual parameter order and quoting (RFC 7616 3.3)."""
        params = [AuthParam("realm", realm, True), AuthParam("nonce", nonce, True)]
        if opaque is not None:
            params.append(AuthParam("opaque", opaque, True))
        params.append(AuthParam("algorithm", algorithm, False))
        if qop:
            params.append(AuthParam("qop", ",".join(qop), True))
        if stale:
            params.append(AuthParam("stale", "true", False))
        return cls.from_params(params)

    def serialize(self) -> str:
        """The header value, ``Digest`` followed by the params in their original order."""
        return _serialize("Digest", self.params)

    @property
    def supported(self) -> bool:
        """True if we can compute responses for this challenge's algorithm."""
        return _split_algorithm(self.algorithm)[0] in _HASHES


def parse_challenges(values: str | Iterable[str]) -> list[DigestChallenge]:
    """Every Digest challenge in one header value or several (non-Digest schemes skipped)."""
    texts = [values] if isinstance(values, str) else list(values)
    result = []
    for text in texts:
        for scheme, params in _parse_auth_list(text):
            if scheme.lower() == "digest":
                result.append(DigestChallenge.from_params(params))
    return result


def select_challenge(
    challenges: Sequence[DigestChallenge], *, realm: str | None = None
) -> DigestChallenge:
    """The strongest supported challenge (RFC 8760 2.4: SHA-512-256 > SHA-256 > MD5).

    Among equals the first listed wins (servers list their preference first).
    """
    usable = [c for c in challenges if c.supported and (realm is None or c.realm == realm)]
    if not usable:
        offered = ", ".join(sorted({c.algorithm for c in challenges})) or "none"
        raise AuthenticationError(f"no supported Digest challenge (offered: {offered})")
    return max(usable, key=lambda c: _STRENGTH[_split_algorithm(c.algorithm)[0]])


@dataclass(frozen=True, slots=True)
class DigestAuthorization:
    """Digest credentials from ``Authorization``/``Proxy-Authorization`` (RFC 7616 3.4)."""

    username: str
    realm: str
    nonce: str
    uri: str
    response: str
    algorithm: str = "MD5"
    cnonce: str | None = None
    opaque: str | None = None
    qop: str | None = None
    nc: int | None = None
    userhash: bool = False
    params: tuple[AuthParam, ...] = ()

    @classmethod
    def parse(cls, value: str) -> DigestAuthorization:
        """Parse a header value holding Digest credentials."""
        found = _parse_auth_list(value)
        if len(found) != 1 or found[0][0].lower() != "digest":
            raise SipParseError("expected one set of Digest credentials")
        params = found[0][1]
        values = _param_map(params)
        missing = [k for k in ("username", "realm", "nonce", "uri", "response") if k not in values]
        if missing:
            raise SipParseError(f"Digest credentials without {', '.join(missing)}")
        nc: int | None = None
        if "nc" in values:
            text = values["nc"]
            if len(text) != 8:
                raise SipParseError(f"bad nonce-count {text[:20]!r}")
            try:
                nc = int(text, 16)
            except ValueError:
                raise SipParseError(f"bad nonce-count {text[:20]!r}") from None
        return cls(
            username=values["username"],
            realm=values["realm"],
            nonce=values["nonce"],
            uri=values["uri"],
            response=values["response"],
            algorithm=_canonical_algorithm(values.get("algorithm", "MD5")),
            cnonce=values.get("cnonce"),
            opaque=values.get("opaque"),
            qop=values["qop"].lower() if "qop" in values else None,
            nc=nc,
            userhash=values.get("userhash", "").lower() == "true",
            params=tuple(params),
        )

    def serialize(self) -> str:
        """The header value with the params in their original order."""
        return _serialize("Digest", self.params)


# --- computation ------------------------------------------------------------------------


def digest_response(
    *,
    algorithm: str,
    username: str,
    password: str,
    realm: str,
    nonce: str,
    method: str,
    uri: str,
    qop: str | None = None,
    nc: int | None = None,
    cnonce: str | None = None,
    body: bytes = b"",
) -> str:
    """The ``response`` value (RFC 7616 3.4.1-3.4.3; RFC 2617 3.2.2 without qop)."""
    base, sess = _split_algorithm(algorithm)
    if base not in _HASHES:
        raise AuthenticationError(f"unsupported digest algorithm {algorithm!r}")
    hash_hex = _HASHES[base]

    def h(text: str) -> str:
        return hash_hex(text.encode("utf-8"))

    ha1 = h(f"{username}:{realm}:{password}")
    if sess:
        if cnonce is None:
            raise AuthenticationError(f"{algorithm} needs a cnonce")
        ha1 = h(f"{ha1}:{nonce}:{cnonce}")  # RFC 7616 3.4.2
    if qop == "auth-int":
        ha2 = h(f"{method}:{uri}:{hash_hex(body)}")  # RFC 7616 3.4.3
    else:
        ha2 = h(f"{method}:{uri}")
    if qop is None:
        return h(f"{ha1}:{nonce}:{ha2}")  # RFC 2069 compatibility
    if nc is None or cnonce is None:
        raise AuthenticationError("qop needs nc and cnonce")
    return h(f"{ha1}:{nonce}:{nc:08x}:{cnonce}:{qop}:{ha2}")


# --- client -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DigestCredentials:
    """A username and password; with ``realm`` set, only that realm is answered."""

    username: str
    password: str
    realm: str | None = None


def _default_cnonce() -> str:
    return secrets.token_hex(16)


class DigestClient:
    """Answers digest challenges for one set of credentials (RFC 3261 22.2, RFC 7616 3.4).

    Call :meth:`authorize` once for each 401/407 received.  A challenge repeating a
    nonce we already answered, without ``stale=true``, means the server rejected
    our credentials: :class:`AuthenticationError` instead of looping.
    """

    __slots__ = ("_answered", "_cnonce_source", "_last", "_nc", "credentials")

    def __init__(
        self, credentials: DigestCredentials, *, cnonce_source: Callable[[], str] | None = None
    ) -> None:
        self.credentials = credentials
        self._cnonce_source = cnonce_source or _default_cnonce
        self._nc: dict[tuple[str, str], int] = {}
        self._answered: set[tuple[str, str]] = set()
        self._last: dict[str, DigestChallenge] = {}

    def authorize(
        self,
        challenge: DigestChallenge | str | Sequence[str],
        *,
        method: str,
        uri: str,
        body: bytes = b"",
        cnonce_source: Callable[[], str] | None = None,
    ) -> str:
        """The Authorization (or Proxy-Authorization) value answering ``challenge``.

        ``challenge`` is a parsed challenge, one header value, or every value of the
        header; the strongest supported challenge is answered.
        """
        if isinstance(challenge, DigestChallenge):
            chosen = challenge
            if not chosen.supported:
                raise AuthenticationError(f"unsupported digest algorithm {chosen.algorithm}")
            if self.credentials.realm is not None and chosen.realm != self.credentials.realm:
                raise AuthenticationError(f"no credentials for realm {chosen.realm!r}")
        else:
            chosen = select_challenge(parse_challenges(challenge), realm=self.credentials.realm)
        key = (chosen.realm, chosen.nonce)
        if key in self._answered and not chosen.stale:
            raise AuthenticationError(
                f"credentials for {self.credentials.username!r} rejected in realm {chosen.realm!r}"
            )
        self._answered.add(key)
        self._last[chosen.realm] = chosen
        return self._respond(chosen, method, uri, body, cnonce_source)

    def authorize_again(
        self,
        *,
        method: str,
        uri: str,
        realm: str | None = None,
        body: bytes = b"",
        cnonce_source: Callable[[], str] | None = None,
    ) -> str | None:
        """Credentials for a new request reusing the last nonce of ``realm`` (nc + 1).

        RFC 7616 3.4: pre-emptive authorisation for in-dialog requests and refreshes.
        None when no challenge of that realm (or none at all) has been answered.
        """
        if realm is None:
            if not self._last:
                return None
            realm = next(reversed(self._last))
        chosen = self._last.get(realm)
        if chosen is None:
            return None
        return self._respond(chosen, method, uri, body, cnonce_source)

    def reset(self) -> None:
        """Forget every nonce (after a successful registration cycle, for instance)."""
        self._nc.clear()
        self._answered.clear()
        self._last.clear()

    def _respond(
        self,
        chosen: DigestChallenge,
        method: str,
        uri: str,
        body: bytes,
        cnonce_source: Callable[[], str] | None,
    ) -> str:
        # RFC 7616 3.3: "auth" if offered; auth-int only when it is all there is.
        qop: str | None
        if not chosen.qop:
            qop = None
        elif "auth" in chosen.qop:
            qop = "auth"
        elif "auth-int" in chosen.qop:
            qop = "auth-int"
        else:
            raise AuthenticationError(f"no supported qop in {chosen.qop}")
        _, sess = _split_algorithm(chosen.algorithm)
        cnonce = nc = None
        if qop is not None or sess:
            cnonce = (cnonce_source or self._cnonce_source)()
        if qop is not None:
            key = (chosen.realm, chosen.nonce)
            nc = self._nc.get(key, 0) + 1  # RFC 7616 3.4: nc counts uses of this nonce
            self._nc[key] = nc
        username = self.credentials.username
        response = digest_response(
            algorithm=chosen.algorithm,
            username=username,
            password=self.credentials.password,
            realm=chosen.realm,
            nonce=chosen.nonce,
            method=method,
            uri=uri,
            qop=qop,
            nc=nc,
            cnonce=cnonce,
            body=body,
        )
        # Parameter order of the RFC 7616 3.9.1 example.
        params = [
            AuthParam("username", username, True),
            AuthParam("realm", chosen.realm, True),
            AuthParam("nonce", chosen.nonce, True),
            AuthParam("uri", uri, True),
            AuthParam("response", response, True),
            AuthParam("algorithm", chosen.algorithm, False),
        ]
        if cnonce is not None:
            params.append(AuthParam("cnonce", cnonce, True))
        if chosen.opaque is not None:
            params.append(AuthParam("opaque", chosen.opaque, True))
        if qop is not None and nc is not None:
            params.append(AuthParam("qop", qop, False))
            params.append(AuthParam("nc", f"{nc:08x}", False))
        return _serialize("Digest", params)


# --- server -----------------------------------------------------------------------------


class VerifyStatus(Enum):
    """Outcome of :meth:`DigestServer.verify`."""

    OK = "ok"
    STALE = "stale"
    """Right password, expired nonce: re-challenge with ``stale=true`` (RFC 7616 3.3)."""
    BAD = "bad"


@dataclass(frozen=True, slots=True)
class VerifyResult:
    """What :meth:`DigestServer.verify` decided, and why."""

    status: VerifyStatus
    username: str | None = None
    reason: str = ""

    @property
    def ok(self) -> bool:
        """True when the request is authenticated."""
        return self.status is VerifyStatus.OK


_NONCE_LEN = 8 + 8 + 16  # timestamp (ms) + salt + truncated HMAC-SHA-256


class DigestServer:
    """Challenges and verifies requests with stateless nonces (RFC 7616 3.3, 5.5).

    A nonce is ``base64url(ms timestamp | salt | HMAC(secret, timestamp | salt | realm |
    source))``: forged nonces fail the HMAC, a nonce presented from another address than the
    one it was issued to fails too (``source``), and a nonce older than ``nonce_ttl`` seconds
    yields STALE when the password was right.

    Replays: RFC 7616 3.4 has the client count its uses of a nonce in ``nc``; the server
    remembers, for each (nonce, cnonce) it accepted, the highest ``nc`` seen (for at most
    ``nonce_ttl``, at most ``max_tracked_nonces`` entries) and refuses a count that does not
    go up, so a captured Authorization cannot be sent again.  Without qop (RFC 2069) there is
    no count: such a nonce is accepted once.

    Failures: :attr:`limiter` counts BAD verifications per source (when ``source`` is given).
    """

    __slots__ = (
        "_lookup",
        "_nc_seen",
        "_salt_source",
        "_secret",
        "algorithms",
        "check_uri",
        "limiter",
        "max_tracked_nonces",
        "nonce_ttl",
        "opaque",
        "qop",
        "realm",
    )

    def __init__(
        self,
        realm: str,
        lookup_password: Callable[[str], str | None],
        *,
        nonce_secret: bytes,
        algorithms: Sequence[str] = ("SHA-256", "MD5"),
        nonce_ttl: float = 300.0,
        qop: Sequence[str] = ("auth",),
        opaque: str | None = None,
        salt_source: Callable[[int], bytes] = secrets.token_bytes,
        check_uri: bool = True,
        max_failures: int = 10,
        failure_window: float = 60.0,
        lockout: float = 300.0,
        max_tracked_nonces: int = 100_000,
    ) -> None:
        if not nonce_secret:
            raise AuthenticationError("DigestServer needs a non-empty nonce_secret")
        for name in algorithms:
            if _split_algorithm(name)[0] not in _HASHES:
                raise AuthenticationError(f"unsupported digest algorithm {name!r}")
        self.realm = realm
        self._lookup = lookup_password
        self.algorithms = tuple(_canonical_algorithm(a) for a in algorithms)
        self._secret = nonce_secret
        self.nonce_ttl = nonce_ttl
        self.qop = tuple(qop)
        self.opaque = opaque
        self._salt_source = salt_source
        self.check_uri = check_uri
        self.limiter = AuthFailureLimiter(max_failures=max_failures, window=failure_window,
                                          lockout=lockout)
        self.max_tracked_nonces = max_tracked_nonces
        # (nonce, cnonce) -> (highest nc accepted, nonce issue time); oldest first
        self._nc_seen: OrderedDict[tuple[str, str], tuple[int, float]] = OrderedDict()

    def make_nonce(self, *, now: float, source: str = "") -> str:
        """A fresh stateless nonce stamped with ``now``, valid only from ``source``."""
        head = struct.pack(">q", int(now * 1000)) + self._salt_source(8)[:8].ljust(8, b"\0")
        mac = self._mac(head, source)
        return base64.urlsafe_b64encode(head + mac).decode("ascii").rstrip("=")

    def challenge(self, *, now: float, stale: bool = False, source: str = "") -> list[str]:
        """Header values for a 401/407, one per algorithm in preference order (RFC 8760 2.4);
        the nonce is bound to ``source`` (the address the challenge is sent to)."""
        nonce = self.make_nonce(now=now, source=source)
        return [
            DigestChallenge.create(
                realm=self.realm,
                nonce=nonce,
                algorithm=algorithm,
                qop=self.qop,
                opaque=self.opaque,
                stale=stale,
            ).serialize()
            for algorithm in self.algorithms
        ]

    def locked_out(self, source: str, *, now: float) -> bool:
        """True while ``source`` is cooling down after too many failures (answer 403)."""
        return self.limiter.locked(source, now=now)

    def verify(
        self,
        authorization: str,
        *,
        method: str,
        uri: str,
        now: float,
        body: bytes = b"",
        source: str = "",
    ) -> VerifyResult:
        """Check credentials for a request from ``source``; never raises on bad input (BAD
        instead).  A BAD result from a named source counts towards its lockout."""
        result = self._verify(authorization, method, uri, now, body, source)
        if result.status is VerifyStatus.BAD and source:
            self.limiter.failure(source, now=now)
        return result

    def _verify(
        self, authorization: str, method: str, uri: str, now: float, body: bytes, source: str
    ) -> VerifyResult:
        try:
            creds = DigestAuthorization.parse(authorization)
        except SipParseError as exc:
            return VerifyResult(VerifyStatus.BAD, None, f"malformed credentials: {exc}")
        user = creds.username

        def bad(reason: str) -> VerifyResult:
            return VerifyResult(VerifyStatus.BAD, user, reason)

        if creds.realm != self.realm:
            return bad(f"wrong realm {creds.realm!r}")
        if creds.algorithm not in self.algorithms:
            return bad(f"algorithm {creds.algorithm} not offered")
        if self.check_uri and creds.uri != uri:
            return bad("digest uri does not match the request URI")  # RFC 7616 3.4.6
        if self.qop:
            if creds.qop not in self.qop or creds.nc is None or creds.cnonce is None:
                return bad("qop, nc or cnonce missing or not offered")
        elif creds.qop is not None:
            return bad("qop not offered")
        if self.opaque is not None and creds.opaque != self.opaque:
            return bad("opaque does not match")
        issued = self._nonce_time(creds.nonce, source)
        if issued is None:
            return bad("nonce not issued by us")  # or issued to another source
        password = self._lookup(user)
        if password is None:
            return bad("unknown user")
        try:
            expected = digest_response(
                algorithm=creds.algorithm,
                username=user,
                password=password,
                realm=self.realm,
                nonce=creds.nonce,
                method=method,
                uri=creds.uri,
                qop=creds.qop,
                nc=creds.nc,
                cnonce=creds.cnonce,
                body=body,
            )
        except AuthenticationError as exc:
            return bad(str(exc))
        if not hmac.compare_digest(expected.encode(), creds.response.lower().encode()):
            return bad("wrong response")
        if not 0 <= now - issued <= self.nonce_ttl:
            return VerifyResult(VerifyStatus.STALE, user, "nonce expired")
        if not self._count_up(creds.nonce, creds.cnonce or "", creds.nc, issued, now):
            return bad("replayed credentials (nonce count did not increase)")
        return VerifyResult(VerifyStatus.OK, user, "")

    def _count_up(self, nonce: str, cnonce: str, nc: int | None, issued: float,
                  now: float) -> bool:
        """Record a use of (nonce, cnonce); False if ``nc`` is not above every count seen
        (RFC 7616 3.4: "the server ... can detect a replay by watching nc")."""
        seen = self._nc_seen
        # forget nonces past their lifetime (they are STALE anyway), oldest first
        while seen:
            key, (_, born) = next(iter(seen.items()))
            if now - born <= self.nonce_ttl and len(seen) < self.max_tracked_nonces:
                break
            del seen[key]
        count = 1 if nc is None else nc  # RFC 2069: no nc, so a nonce is good once
        key = (nonce, cnonce)
        last = seen.get(key)
        if last is not None and count <= last[0]:
            return False
        seen[key] = (count, issued)
        return True

    def _mac(self, head: bytes, source: str = "") -> bytes:
        data = head + self.realm.encode("utf-8") + b"\0" + source.encode("utf-8")
        return hmac.new(self._secret, data, hashlib.sha256).digest()[:16]

    def _nonce_time(self, nonce: str, source: str = "") -> float | None:
        """The issue time of one of our nonces issued to ``source``, None if it is not."""
        try:
            raw = base64.urlsafe_b64decode(nonce + "=" * (-len(nonce) % 4))
        except (binascii.Error, ValueError):
            return None
        if len(raw) != _NONCE_LEN:
            return None
        head, mac = raw[:16], raw[16:]
        if not hmac.compare_digest(mac, self._mac(head, source)):
            return None
        (millis,) = struct.unpack(">q", head[:8])
        return float(millis) / 1000.0


class AuthFailureLimiter:
    """Per-source failed-authentication limiting (issue 12 finding 6), sans-IO.

    After ``max_failures`` failures within ``window`` seconds a source is locked out for
    ``lockout`` seconds: its requests are answered 403 without trying the password, so a
    guesser gets ``max_failures`` tries per ``lockout`` instead of a thousand a second.
    At most ``max_sources`` sources are remembered (the oldest forgotten first), so a
    spoofed-address flood costs bounded memory.
    """

    __slots__ = ("_failures", "_locked", "lockout", "max_failures", "max_sources", "window")

    def __init__(self, *, max_failures: int = 10, window: float = 60.0, lockout: float = 300.0,
                 max_sources: int = 10_000) -> None:
        self.max_failures = max_failures
        self.window = window
        self.lockout = lockout
        self.max_sources = max_sources
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._locked: dict[str, float] = {}

    def failure(self, source: str, *, now: float) -> bool:
        """Count a failure from ``source``; True if this one locks it out."""
        times = self._failures.pop(source, None)
        if times is None:
            times = deque(maxlen=self.max_failures)
            while len(self._failures) >= self.max_sources:
                self._failures.popitem(last=False)
        self._failures[source] = times  # most recent last
        times.append(now)
        full = len(times) >= self.max_failures and now - times[0] <= self.window
        if not full or source in self._locked:
            return False
        if len(self._locked) >= self.max_sources:
            self._locked = {s: t for s, t in self._locked.items() if t > now}
        self._locked[source] = now + self.lockout
        times.clear()
        return True

    def locked(self, source: str, *, now: float) -> bool:
        """True while ``source`` is locked out."""
        until = self._locked.get(source)
        if until is None:
            return False
        if now >= until:
            del self._locked[source]
            return False
        return True

    def locked_sources(self, *, now: float) -> list[str]:
        """Sources locked out at ``now`` (for metrics and the log)."""
        return [src for src, until in self._locked.items() if until > now]
