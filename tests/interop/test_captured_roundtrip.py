"""Every SIP message captured from a real peer (``tests/fixtures/sip/interop/``, written by
the interop tests with ``DIALTONE_UPDATE_CAPTURES=1``) parses and re-serialises to the very
same bytes.  All peers so far (SIPp, baresip, Kamailio, pyVoIP) round-trip byte for byte,
so no structural-equality fallback is needed."""

from __future__ import annotations

from pathlib import Path

import pytest

from telephony.sip.message import SipRequest, SipResponse, parse_datagram
from tests.interop.peers import CAPTURE_DIR

pytestmark = pytest.mark.interop

CAPTURES = sorted(CAPTURE_DIR.glob("*.sip"))


def test_every_peer_is_represented() -> None:
    names = {p.name.split("_", 1)[0] for p in CAPTURES}
    assert {"sipp", "baresip", "kamailio", "pyvoip"} <= names, names
    kinds = {p.stem.rsplit("_", 1)[1] for p in CAPTURES}
    assert {"invite", "ack", "bye", "register"} <= kinds, kinds


@pytest.mark.parametrize("path", CAPTURES, ids=[p.name for p in CAPTURES])
def test_capture_round_trips_byte_for_byte(path: Path) -> None:
    data = path.read_bytes()
    msg = parse_datagram(data)
    msg.check_mandatory()
    assert msg.serialize() == data
    kind = path.stem.rsplit("_", 1)[1]  # "invite", or "200-invite" for a response
    if "-" in kind:
        status, method = kind.split("-")
        assert isinstance(msg, SipResponse) and msg.status == int(status)
        assert msg.cseq.method == method.upper()
    else:
        assert isinstance(msg, SipRequest) and msg.method == kind.upper()
        assert msg.cseq.method == msg.method or msg.method == "ACK"
    # The body is exactly Content-Length bytes (RFC 3261 18.3: peers must set it on UDP too).
    length = msg.headers.get("Content-Length")
    assert length is not None and int(length) == len(msg.body)


@pytest.mark.parametrize("path", CAPTURES[:4], ids=[p.name for p in CAPTURES[:4]])
def test_capture_with_trailing_bytes_keeps_content_length(path: Path) -> None:
    """A datagram with junk after the body: the body stops at Content-Length (18.3)."""
    data = path.read_bytes()
    msg = parse_datagram(data + b"\r\n\r\ntrailing junk")
    assert msg.serialize() == data
