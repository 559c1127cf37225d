"""The import's fast path (dialer.e164) decides every number exactly as phonenumbers does.

The sample: phonenumbers' example numbers of every type for every region and
non-geographical code, in each format, mutated as people and spreadsheets mutate them, plus
random digit strings, parsed with 25 default regions.  ``benchmarks/bench_dialer_import.py
--verify N`` runs the same comparison on millions.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from dialer.e164 import E164FastPath
from dialer.lists import NumberParser

from .e164_samples import DEFAULT_REGIONS, examples, samples


def test_fast_path_equals_phonenumbers_on_a_varied_sample() -> None:
    fast = {r: NumberParser(r) for r in DEFAULT_REGIONS}
    slow = {r: NumberParser(r, fast=False) for r in DEFAULT_REGIONS}
    paths = {r: E164FastPath(r) for r in DEFAULT_REGIONS}
    taken = valid = impossible = 0
    mismatches = []
    for region, raw in samples(6000):
        got, want = fast[region].parse(raw), slow[region].parse(raw)
        if got != want:
            mismatches.append((region, raw, got, want))
        if paths[region].classify(raw) is not None:
            taken += 1
            valid += want.e164 is not None
            impossible += want.reason == "impossible number"
    assert mismatches == []
    # The comparison means something only if the fast path decided most of the sample
    # itself, valid and impossible numbers alike.
    assert taken > 3500 and valid > 1400 and impossible > 500


def test_every_example_number_in_every_format_and_region() -> None:
    base = examples()
    assert len(base) > 3000
    for region in ("GB", "IT"):
        fast, slow = NumberParser(region), NumberParser(region, fast=False)
        for raw in base:
            assert fast.parse(raw) == slow.parse(raw), (region, raw)


@settings(max_examples=300, deadline=None)
@given(region=st.sampled_from(DEFAULT_REGIONS),
       raw=st.text(alphabet="0123456789 +-().", min_size=1, max_size=22))
def test_fast_path_equals_phonenumbers_on_random_strings(region: str, raw: str) -> None:
    assert NumberParser(region).parse(raw) == NumberParser(region, fast=False).parse(raw)


def test_fast_path_declines_what_it_cannot_decide_exactly() -> None:
    f = E164FastPath("GB")
    for raw in ("00 33 6 12 34 56 78", "07400 123456 ext 2", "+999 123",
                "12", "Tel: 020 7946 0000", "＋44 7400 123456"):
        assert f.classify(raw) is None, raw
    assert f.classify("+44 (0)20 7946 0000") == ("+442079460000", "Europe/London")
    # The region's own calling code without "+", read as phonenumbers reads it.
    assert f.classify("44 20 7946 0000") == ("+442079460000", "Europe/London")
    assert E164FastPath("US").classify("1 (212) 555-0100") == ("+12125550100",
                                                                "America/New_York")
    assert f.classify("07400 12") == ""  # parses, cannot exist
    assert E164FastPath("XX").classify("+44 7400 123456") is None  # unknown region
