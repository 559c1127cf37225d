"""The node-wide transfer policy (issue 12 finding 2): which targets a transfer may call."""

from __future__ import annotations

import pytest

from telephony.errors import ConfigError
from telephony.sip.transfer_policy import TransferPolicy, TransferRule, normalise_number

PBX = TransferPolicy.from_patterns(
    ["sip:queue-*@pbx.example.com:5060;transport=udp", "sip:+4420*@10.0.0.5", "tel:+4420*"],
    inbound_refer=True)


def test_default_policy_refuses_inbound_refer_but_not_the_nodes_own_transfers() -> None:
    policy = TransferPolicy()
    refer = policy.permits_refer("sip:+900123456@127.0.0.1:5999")
    assert not refer and refer.status == 403 and "disabled" in refer.reason
    assert policy.permits("sip:agent@127.0.0.1:5070").allowed


def test_inbound_refer_needs_rules() -> None:
    with pytest.raises(ConfigError):
        TransferPolicy(None, inbound_refer=True)


@pytest.mark.parametrize("target", [
    "sip:queue-sales@pbx.example.com",            # default port 5060, default udp
    "sip:queue-support@PBX.example.com:5060",      # hosts compare case-insensitively
    "<sip:queue-x@pbx.example.com;transport=udp>",
    "sip:+442079460000@10.0.0.5",
    "sip:+44-20-7946-0000@10.0.0.5:5060",          # RFC 3966 visual separators ignored
    "tel:+442079460000",
    "tel:+44 (20) 7946 0000;phone-context=example.com",
])
def test_permitted_targets(target: str) -> None:
    assert PBX.permits(target).allowed
    assert PBX.permits_refer(target).allowed


@pytest.mark.parametrize("target", [
    "sip:+900123456@127.0.0.1:5999",               # the premium-rate REFER
    "sip:queue-sales@pbx.example.com:5999",        # right host, wrong port
    "sip:queue-sales@pbx.example.com;transport=tcp",  # TCP to the PBX: not in the rule
    "sip:queue-sales@evil.example.com",
    "sip:queue-sales@pbx.example.com.evil.net",
    "sip:+900123456@10.0.0.5",                     # right host, wrong number
    "sips:+442079460000@10.0.0.5",                 # scheme must match too
    "tel:+900123456",
    "sip:anything@10.0.0.6;transport=tcp",         # request forgery to another host
    "sip:+442079460000@10.0.0.5;transport=tcp",    # TCP needs a rule that says so
])
def test_refused_targets(target: str) -> None:
    decision = PBX.permits(target)
    assert not decision.allowed and decision.status == 403
    assert not PBX.permits_refer(target).allowed


@pytest.mark.parametrize("target", ["http://example.com/", "mailto:x@y", "sip:", "nonsense"])
def test_unusable_targets_are_refused_not_raised(target: str) -> None:
    assert not PBX.permits(target).allowed
    assert not TransferPolicy().permits(target).allowed


def test_transport_star_admits_any_transport() -> None:
    rule = TransferRule.parse("sip:agent@127.0.0.1;transport=*")
    assert rule.matches("sip:agent@127.0.0.1;transport=tcp")
    assert rule.matches("sip:agent@127.0.0.1")
    assert not TransferRule.parse("sip:agent@127.0.0.1").matches("sip:agent@127.0.0.1;transport=tcp")


def test_empty_rules_refuse_everything() -> None:
    policy = TransferPolicy(rules=())
    assert not policy.permits("sip:agent@127.0.0.1:5070").allowed


@pytest.mark.parametrize("pattern", [
    "sip:*", "sip:*@*", "ftp:x", "sip:a@h:99999", "sip:a@h;maddr=x", "x", "sip:a@[::1",
])
def test_bad_or_open_patterns_are_config_errors(pattern: str) -> None:
    with pytest.raises(ConfigError):
        TransferRule.parse(pattern)


def test_rule_parse_round_trips_and_ipv6() -> None:
    rule = TransferRule.parse("sip:+4420*@[2001:db8::1]:5070;transport=TCP")
    assert (rule.scheme, rule.number, rule.host, rule.port, rule.transport) == (
        "sip", "+4420*", "2001:db8::1", 5070, "tcp")
    assert rule.matches("sip:+442079460000@[2001:db8::1]:5070;transport=tcp")
    assert not rule.matches("sip:+442079460000@[2001:db8::1]:5070")
    assert TransferRule.parse(str(rule)) == rule
    assert TransferRule.parse(str(PBX.rules[0])) == PBX.rules[0]  # type: ignore[index]
    assert normalise_number("+44 (20) 7946-0000") == "+442079460000"
