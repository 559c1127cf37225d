"""SIP dialogs (RFC 3261 section 12): identifiers, route set, remote target, CSeq spaces.

A :class:`Dialog` is pure data plus the rules of 12.1 (creation from either side) and
12.2.1.1 (building a request inside it).  The endpoint keeps dialogs in a dict keyed by
``(Call-ID, local tag, remote tag)``.
"""

from __future__ import annotations

import ipaddress
from enum import Enum, auto
from functools import lru_cache

from .headers import NameAddr, SipUri
from .message import Headers, SipRequest, SipResponse


class DialogState(Enum):
    EARLY = auto()
    CONFIRMED = auto()
    TERMINATED = auto()


@lru_cache(maxsize=512)
def is_ip_literal(host: str) -> bool:
    """True for an IPv4 or IPv6 address (brackets allowed); memoised: a dialer asks this of
    the same few peers for every in-dialog request, and ``ipaddress`` costs ~10 us."""
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


class Dialog:
    """One dialog; ``local_uri``/``remote_uri`` are the From/To header values without tags."""

    __slots__ = (
        "_from_value",
        "_to_value",
        "call_id",
        "local_seq",
        "local_tag",
        "local_uri",
        "remote_addr",
        "remote_seq",
        "remote_tag",
        "remote_target",
        "remote_uri",
        "route_set",
        "state",
        "transport",
        "we_are_uac",
    )

    def __init__(self, *, call_id: str, local_tag: str, remote_tag: str, local_uri: NameAddr,
                 remote_uri: NameAddr, local_seq: int, remote_seq: int | None,
                 remote_target: SipUri, route_set: list[str], transport: str,
                 remote_addr: tuple[str, int], state: DialogState, we_are_uac: bool) -> None:
        self.call_id = call_id
        self.local_tag = local_tag
        self.remote_tag = remote_tag
        self.local_uri = local_uri
        self.remote_uri = remote_uri
        self.local_seq = local_seq
        self.remote_seq = remote_seq
        self.remote_target = remote_target
        self.route_set = route_set
        self.transport = transport
        self.remote_addr = remote_addr
        self.state = state
        self.we_are_uac = we_are_uac
        self._from_value: str | None = None
        self._to_value: str | None = None

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.call_id, self.local_tag, self.remote_tag)

    @classmethod
    def from_uac(cls, request: SipRequest, response: SipResponse, *, transport: str,
                 remote_addr: tuple[str, int]) -> Dialog:
        """The UAC side (12.1.2): route set is the response's Record-Route reversed, remote
        target its Contact, remote tag its To tag."""
        to = response.to
        contacts = response.contacts
        target = contacts[0].uri if contacts else request.uri
        frm = request.from_
        return cls(call_id=request.call_id, local_tag=frm.tag or "", remote_tag=to.tag or "",
                   local_uri=_untagged(frm), remote_uri=_untagged(to),
                   local_seq=request.cseq.seq, remote_seq=None, remote_target=target,
                   route_set=list(reversed(response.headers.get_all("Record-Route"))),
                   transport=transport, remote_addr=remote_addr,
                   state=DialogState.CONFIRMED if response.status >= 200 else DialogState.EARLY,
                   we_are_uac=True)

    @classmethod
    def from_uas(cls, request: SipRequest, *, local_tag: str, transport: str,
                 remote_addr: tuple[str, int]) -> Dialog:
        """The UAS side (12.1.1): route set is Record-Route in order, remote target the
        request's Contact, remote sequence number its CSeq."""
        frm = request.from_
        contacts = request.contacts
        target = contacts[0].uri if contacts else SipUri(host=remote_addr[0], port=remote_addr[1])
        return cls(call_id=request.call_id, local_tag=local_tag, remote_tag=frm.tag or "",
                   local_uri=_untagged(request.to), remote_uri=_untagged(frm), local_seq=0,
                   remote_seq=request.cseq.seq, remote_target=target,
                   route_set=request.headers.get_all("Record-Route"), transport=transport,
                   remote_addr=remote_addr, state=DialogState.EARLY, we_are_uac=False)

    def next_seq(self) -> int:
        # RFC 3261 12.2.1.1: strictly increasing by one; a UAS starts its space anywhere.
        if self.local_seq == 0:
            self.local_seq = 1
        else:
            self.local_seq += 1
        return self.local_seq

    def create_request(self, method: str, *, via: str, cseq: int | None = None,
                       headers: list[tuple[str, str]] | tuple[tuple[str, str], ...] = (),
                       body: bytes = b"") -> SipRequest:
        """A request within the dialog (12.2.1.1), loose routing (and strict if the first
        route lacks ``lr``)."""
        seq = cseq if cseq is not None else self.next_seq()
        # From and To are the same on every request of the dialog: formatted once (the
        # tags and URIs never change once the dialog exists)
        frm = self._from_value
        if frm is None:
            frm = self._from_value = str(self.local_uri.with_tag(self.local_tag))
        to = self._to_value
        if to is None:
            to = self._to_value = str(self.remote_uri.with_tag(self.remote_tag))
        h = Headers([("Via", via), ("Max-Forwards", "70"), ("From", frm), ("To", to),
                     ("Call-ID", self.call_id), ("CSeq", f"{seq} {method}")])
        uri = self.remote_target
        routes = self.route_set
        if routes:
            first = NameAddr.parse(routes[0])
            if "lr" in first.uri.params:
                for r in routes:
                    h.add("Route", r)
            else:  # strict router (12.2.1.1): it becomes the Request-URI
                uri = first.uri
                for r in routes[1:]:
                    h.add("Route", r)
                h.add("Route", f"<{self.remote_target}>")
        for name, value in headers:
            h.add(name, value)
        return SipRequest(method, uri, h, body)

    def destination(self) -> tuple[tuple[str, int], str]:
        """Where the next in-dialog request goes (RFC 3263 without DNS): the first route,
        else the remote target if it is an address, else where the dialog's peer was."""
        transport = self.transport
        if self.route_set:
            uri = NameAddr.parse(self.route_set[0]).uri
        else:
            uri = self.remote_target
        if "transport" in uri.params:
            transport = uri.transport
        if uri.opaque is None and is_ip_literal(uri.host):
            return uri.host_port, transport
        return self.remote_addr, transport


def _untagged(addr: NameAddr) -> NameAddr:
    if "tag" not in addr.params:
        return addr
    params = {k: v for k, v in addr.params.items() if k != "tag"}
    return NameAddr(addr.uri, addr.display_name, params)
