"""Varied phone number strings for checking the import's fast path against phonenumbers.

Shared by tests/unit/test_dialer_e164.py and ``benchmarks/bench_dialer_import.py --verify``:
phonenumbers' example numbers of every type for every region and non-geographical calling
code, written in each of its formats and in the ways people type them, then mutated (digits
changed, added, dropped; a calling code without its "+"; an international prefix; a "(0)";
punctuation and letters), plus random digit strings.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Iterator

import phonenumbers
from phonenumbers import PhoneNumberFormat, PhoneNumberType

TYPES = [t for t in vars(PhoneNumberType).values()
         if isinstance(t, int) and t != PhoneNumberType.UNKNOWN]
FORMATS = (PhoneNumberFormat.E164, PhoneNumberFormat.INTERNATIONAL,
           PhoneNumberFormat.NATIONAL, PhoneNumberFormat.RFC3966)
DEFAULT_REGIONS = ("GB", "US", "CA", "FR", "DE", "IT", "ES", "AU", "IN", "BR", "JP", "RU", "KZ",
                   "MX", "AR", "NL", "SE", "CN", "ZA", "NG", "AE", "SG", "NZ", "IE", "JE")
PUNCT = " -.()"


@functools.cache
def examples() -> list[str]:
    """Every example number phonenumbers has, in each format (a few thousand strings)."""
    out: list[str] = []
    nums = []
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        for t in TYPES:
            n = phonenumbers.example_number_for_type(region, t)
            if n is not None:
                nums.append(n)
        bad = phonenumbers.invalid_example_number(region)
        if bad is not None:
            nums.append(bad)
    for cc in sorted(phonenumbers.COUNTRY_CODES_FOR_NON_GEO_REGIONS):
        n = phonenumbers.example_number_for_non_geo_entity(cc)
        if n is not None:
            nums.append(n)
    for n in nums:
        for f in FORMATS:
            out.append(phonenumbers.format_number(n, f))
    return out


def mutate(s: str, r: random.Random) -> str:
    """One way a person (or a spreadsheet) spoils or varies a number."""
    digits = [i for i, c in enumerate(s) if c.isdigit()]
    k = r.randrange(14)
    if k == 0 and digits:  # a digit changed
        i = r.choice(digits)
        return s[:i] + str(r.randrange(10)) + s[i + 1:]
    if k == 1:  # a digit added
        i = r.randrange(len(s) + 1)
        return s[:i] + str(r.randrange(10)) + s[i:]
    if k == 2 and digits:  # a digit dropped
        i = r.choice(digits)
        return s[:i] + s[i + 1:]
    if k == 3:  # all punctuation gone
        return "".join(c for c in s if c.isdigit() or c == "+")
    if k == 4:  # punctuation sprinkled
        return "".join(c + (r.choice(PUNCT) if r.random() < 0.3 else "") for c in s)
    if k == 5:  # the "+" dropped (a calling code without it)
        return s.replace("+", "")
    if k == 6:  # an international prefix instead of "+"
        return s.replace("+", r.choice(["00", "011", "0011", "810", "00 "]))
    if k == 7:  # "(0)" after the calling code, as on European letterheads
        return s.replace(" ", " (0)", 1)
    if k == 8:  # letters, an extension, odd characters
        return s + r.choice([" ext. 12", " x3", "#", " call me", "/x2", ";ext=5", "\t"])
    if k == 9:  # leading text or brackets
        return r.choice(["Tel: ", "(", "+", "++", "-", " "]) + s
    if k == 10:  # truncated
        return s[: max(1, len(s) - r.randrange(1, 6))]
    if k == 11:  # doubled
        return s + s[-r.randrange(1, 5):]
    if k == 12:  # unicode digits or spaces
        return s.replace("1", "\uff11").replace(" ", "\xa0")
    return s


def random_digits(r: random.Random) -> str:
    """A random string of digits and punctuation, sometimes with a "+"."""
    n = r.randrange(1, 19)
    body = "".join(str(r.randrange(10)) + (r.choice(PUNCT) if r.random() < 0.15 else "")
                   for _ in range(n))
    return ("+" if r.random() < 0.4 else "") + body


def samples(n: int, seed: int = 13) -> Iterator[tuple[str, str]]:
    """``n`` (default region, raw string) pairs: examples, mutations, the region's own calling
    code before national numbers, random strings."""
    r = random.Random(seed)
    base = examples()
    national: dict[str, list[str]] = {}
    for region in DEFAULT_REGIONS:
        cc = phonenumbers.country_code_for_region(region)
        for t in TYPES:
            ex = phonenumbers.example_number_for_type(region, t)
            if ex is not None:
                text = phonenumbers.format_number(ex, PhoneNumberFormat.NATIONAL)
                # The region's own calling code written before a national number, without
                # "+" (with and without its national prefix): phonenumbers weighs both readings.
                national.setdefault(region, []).extend(
                    [f"{cc} {text}", f"{cc}{text.lstrip('0')}", f"{cc} {text.lstrip('0')}"])
    for i in range(n):
        region = DEFAULT_REGIONS[i % len(DEFAULT_REGIONS)]
        x = r.random()
        if x < 0.08 and national.get(region):
            s = r.choice(national[region])
            yield region, (mutate(s, r) if r.random() < 0.5 else s)
            continue
        if x < 0.35:
            s = r.choice(base)
        elif x < 0.8:
            s = mutate(r.choice(base), r)
            if r.random() < 0.3:
                s = mutate(s, r)
        else:
            s = random_digits(r)
        yield region, s
