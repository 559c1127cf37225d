"""A fast path through phonenumbers for plain numbers: parse, classify, E.164, time zones.

A contact list is mostly numbers written plainly: digits with spaces, dashes, dots or
brackets, perhaps a leading ``+``.  For those, ``phonenumbers.parse`` followed by
``number_type`` and ``format_number`` spends most of its ~30 us per number in generic
machinery (looking regular expressions up by their text, normalising every character through
a Unicode table, building a ``PhoneNumber``), not in the decisions themselves.

:class:`E164FastPath` takes the same decisions, in the same order, with phonenumbers' own
metadata (the same regular expressions, compiled once per region): the international prefix
(``+``), the country calling code, the national prefix and carrier code
(``national_prefix_for_parsing``, its transform rule, the viability and length checks that
decide whether stripping is kept), the region of a shared calling code (leading digits, else
full validation, in phonenumbers' region order) and the number type (phonenumbers' order of
descriptions, gated by possible lengths).  Whatever it is not sure to decide exactly as
phonenumbers would, it declines (``None``) and the caller asks phonenumbers itself: any
character other than digits, spaces, ``( ) . -`` and one leading ``+``; an international
dialling prefix written as digits (``00 44 ...``, ``011 ...``); anything phonenumbers would
reject with an exception (too short, unknown calling code, too long).  So the fast path never decides
a case differently from phonenumbers; ``tests/unit/test_dialer_e164.py`` checks that on a large
varied sample, and ``benchmarks/bench_dialer_import.py --verify N`` on millions.

Time zones: phonenumbers' own look-up is a longest-prefix match on the E.164 digits, at most
``TIMEZONE_LONGEST_PREFIX`` of them, for geographical numbers (fixed lines, and mobiles in the
few countries where phonenumbers treats mobiles as geographical), and by calling code
otherwise; the results are cached on exactly those keys.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import cast

import phonenumbers
from phonenumbers import PhoneMetadata, PhoneNumberType
from phonenumbers import timezone as pn_timezone
from phonenumbers.tzdata import TIMEZONE_DATA, TIMEZONE_LONGEST_PREFIX

from dialer.windows import zones_key

__all__ = ["IMPOSSIBLE", "E164FastPath"]

IMPOSSIBLE = ""
"""What :meth:`E164FastPath.classify` returns for a number that parses but is not valid
(phonenumbers' ``number_type`` is ``UNKNOWN``)."""

# phonenumbers' own limits (phonenumberutil._MIN_LENGTH_FOR_NSN and friends).
_MIN_NSN = 2
_MAX_NSN = 17
_MAX_INPUT = 250
_MAX_CC_DIGITS = 3
_NON_GEO = "001"

# Plain input: punctuation phonenumbers ignores, an optional "+", digits.  phonenumbers starts
# the number at the first "+" or digit and ignores trailing punctuation; none of these
# characters can start an extension (those need a letter, "#", "," or ";") or a second number
# ("/" or "\").
_PLAIN = re.compile(r"[ ().\-]*(\+?)([0-9 ().\-]*)")
_DROP = str.maketrans("", "", " ().-")

_CALLING_CODES = {str(cc): cc for cc in phonenumbers.COUNTRY_CODE_TO_REGION_CODE}
_UNKNOWN = PhoneNumberType.UNKNOWN
_MOBILE = PhoneNumberType.MOBILE
# phonenumbers' is_number_type_geographical: fixed lines, and mobiles where its
# _GEO_MOBILE_COUNTRIES says so (read through the function, not the private set).
_GEO_TYPES = frozenset({PhoneNumberType.FIXED_LINE, PhoneNumberType.FIXED_LINE_OR_MOBILE})
_GEO_MOBILE = frozenset(cc for cc in phonenumbers.COUNTRY_CODE_TO_REGION_CODE
                        if phonenumbers.is_number_type_geographical(PhoneNumberType.MOBILE, cc))

# phonenumbers' ValidationResult, as far as _test_number_length is concerned.
_IS_POSSIBLE, _LOCAL_ONLY, _TOO_SHORT, _TOO_LONG, _INVALID_LENGTH = range(5)


@dataclass(frozen=True, slots=True)
class _Desc:
    """A PhoneNumberDesc: its possible lengths (empty: not checked) and its pattern."""

    lengths: frozenset[int]
    pattern: re.Pattern[str] | None

    @classmethod
    def of(cls, desc: object) -> _Desc | None:
        if desc is None:
            return None
        text = getattr(desc, "national_number_pattern", None)
        return cls(frozenset(getattr(desc, "possible_length", ()) or ()),
                   re.compile(text) if text else None)

    def matches(self, nsn: str) -> bool:
        """phonenumbers' ``_is_number_matching_desc``."""
        if self.lengths and len(nsn) not in self.lengths:
            return False
        return self.pattern is not None and self.pattern.fullmatch(nsn) is not None


_SPECIAL_TYPES = (
    ("premium_rate", PhoneNumberType.PREMIUM_RATE),
    ("toll_free", PhoneNumberType.TOLL_FREE),
    ("shared_cost", PhoneNumberType.SHARED_COST),
    ("voip", PhoneNumberType.VOIP),
    ("personal_number", PhoneNumberType.PERSONAL_NUMBER),
    ("pager", PhoneNumberType.PAGER),
    ("uan", PhoneNumberType.UAN),
    ("voicemail", PhoneNumberType.VOICEMAIL),
)


class _Plan:
    """One region's metadata, compiled once."""

    def __init__(self, md: PhoneMetadata) -> None:
        self.country_code = int(md.country_code or 0)
        gd = md.general_desc
        self.general_pattern = (re.compile(gd.national_number_pattern)
                                if gd is not None and gd.national_number_pattern else None)
        self.general_lengths: tuple[int, ...] = tuple(gd.possible_length or ()) if gd else ()
        self.general_local: tuple[int, ...] = (tuple(gd.possible_length_local_only or ())
                                               if gd else ())
        self.general = _Desc.of(gd)
        self.special = [(d, t) for d, t in ((_Desc.of(getattr(md, name)), t)
                                            for name, t in _SPECIAL_TYPES) if d is not None]
        self.fixed = _Desc.of(md.fixed_line)
        self.mobile = _Desc.of(md.mobile)
        self.same_mobile_and_fixed = bool(md.same_mobile_and_fixed_line_pattern)
        self.leading_digits = (re.compile(md.leading_digits) if md.leading_digits is not None
                               else None)
        npp = md.national_prefix_for_parsing
        self.national_prefix = re.compile(npp) if npp else None
        self.transform = md.national_prefix_transform_rule or None
        self.idd = re.compile(md.international_prefix) if md.international_prefix else None
        self._by_length: dict[int, tuple[re.Pattern[str] | None, re.Pattern[str] | None,
                                         dict[str, int]]] = {}

    def viable(self, digits: str) -> bool:
        """phonenumbers' ``_match_national_number(digits, general_desc, False)``."""
        return self.general_pattern is not None and \
            self.general_pattern.fullmatch(digits) is not None

    def length_result(self, digits: str) -> int:
        """phonenumbers' ``_test_number_length(digits, metadata)`` (type UNKNOWN)."""
        n = len(digits)
        pl = self.general_lengths
        if n in self.general_local:
            return _LOCAL_ONLY
        if pl[0] == n:
            return _IS_POSSIBLE
        if pl[0] > n:
            return _TOO_SHORT
        if pl[-1] < n:
            return _TOO_LONG
        return _IS_POSSIBLE if n in pl[1:] else _INVALID_LENGTH

    def strip_national_prefix(self, digits: str) -> str:
        """phonenumbers' ``_maybe_strip_national_prefix_carrier_code``: the number after it."""
        if not digits or self.national_prefix is None:
            return digits
        m = self.national_prefix.match(digits)
        if m is None:
            return digits
        viable_original = self.viable(digits)
        groups = m.groups()
        if self.transform is None or not groups or groups[-1] is None:
            rest = digits[m.end():]
            if viable_original and not self.viable(rest):
                return digits
            return rest
        transformed = self.national_prefix.sub(self.transform, digits, count=1)
        if viable_original and not self.viable(transformed):
            return digits
        return transformed

    def number_type(self, nsn: str) -> int:
        """phonenumbers' ``_number_type_helper``: the general description must match, then
        the first of premium rate, toll free, shared cost, VoIP, personal, pager, UAN,
        voicemail, fixed line (or mobile too), mobile that does, each gated by its possible
        lengths.  Per length, the descriptions the length leaves are joined into one
        alternation in that order: a full match takes the first alternative that matches
        whole, which is the first description phonenumbers would accept."""
        entry = self._by_length.get(len(nsn))
        if entry is None:
            entry = self._by_length[len(nsn)] = self._join(len(nsn))
        general, joined, types = entry
        if general is None or general.fullmatch(nsn) is None or joined is None:
            return _UNKNOWN
        m = joined.fullmatch(nsn)
        if m is None:
            return _UNKNOWN
        t = types[cast(str, m.lastgroup)]
        if t == _FIXED:
            if self.same_mobile_and_fixed or (self.mobile is not None
                                              and self.mobile.matches(nsn)):
                return PhoneNumberType.FIXED_LINE_OR_MOBILE
            return PhoneNumberType.FIXED_LINE
        return t

    def _join(self, n: int) -> tuple[re.Pattern[str] | None, re.Pattern[str] | None,
                                     dict[str, int]]:
        """For numbers of length ``n``: the general pattern (None: no number of this length
        is valid) and the alternation of the type patterns in phonenumbers' order."""
        def fits(d: _Desc | None) -> bool:
            return d is not None and d.pattern is not None and (not d.lengths
                                                                or n in d.lengths)
        if not fits(self.general):
            return None, None, {}
        assert self.general is not None
        parts: list[tuple[re.Pattern[str], int]] = [
            (d.pattern, t) for d, t in self.special if fits(d) and d.pattern is not None]
        if fits(self.fixed) and self.fixed is not None and self.fixed.pattern is not None:
            parts.append((self.fixed.pattern, _FIXED))
        if not self.same_mobile_and_fixed and fits(self.mobile) and self.mobile is not None \
                and self.mobile.pattern is not None:
            parts.append((self.mobile.pattern, PhoneNumberType.MOBILE))
        if not parts:
            return self.general.pattern, None, {}
        # The metadata's patterns have no groups of their own (checked here), so each
        # alternative's named group is the last one closed: lastgroup names it.
        assert all(p.groups == 0 for p, _ in parts)
        joined = re.compile("|".join(f"(?P<t{i}>{p.pattern})" for i, (p, _) in enumerate(parts)))
        return self.general.pattern, joined, {f"t{i}": t for i, (_, t) in enumerate(parts)}


_FIXED = -2
"""Stands for the fixed-line description in a joined alternation (fixed line, or fixed line
or mobile)."""


class E164FastPath:
    """Plain numbers to (E.164, zones) exactly as phonenumbers would, or ``None`` to ask it.

    One instance per default region (a campaign's); not thread-safe (its caches grow).
    """

    def __init__(self, region: str) -> None:
        self.region = region
        self._plans: dict[tuple[int, str], _Plan | None] = {}
        self._home: _Plan | None = None
        if region in phonenumbers.SUPPORTED_REGIONS:
            md = PhoneMetadata.metadata_for_region(region, None)
            if md is not None:
                self._home = _Plan(md)
                self._plans[(self._home.country_code, region)] = self._home
        self._home_cc = str(self._home.country_code) if self._home else ""
        self._geo: dict[str, str] = {}
        self._country: dict[int, str] = {}
        self._calling: dict[int, tuple[_Plan | None, list[_Plan | None]]] = {}

    def _plan(self, cc: int, region: str) -> _Plan | None:
        key = (cc, region)
        try:
            return self._plans[key]
        except KeyError:
            md = PhoneMetadata.metadata_for_region_or_calling_code(cc, region)
            plan = self._plans[key] = _Plan(md) if md is not None else None
            return plan

    def _calling_code(self, cc: int) -> tuple[_Plan | None, list[_Plan | None]]:
        """The plan phonenumbers parses a +cc number with (its main region's) and the plans
        of every region sharing the code, in phonenumbers' order."""
        got = self._calling.get(cc)
        if got is None:
            regions = phonenumbers.COUNTRY_CODE_TO_REGION_CODE[cc]
            got = self._calling[cc] = (self._plan(cc, regions[0]),
                                       [self._plan(cc, r) for r in regions])
        return got

    def classify(self, raw: str) -> tuple[str, str] | str | None:
        """``(e164, zones)`` for a valid number, :data:`IMPOSSIBLE` for one that parses but
        cannot exist, ``None`` when phonenumbers itself must decide (not plain, or an error
        phonenumbers reports with its own message)."""
        home = self._home
        if home is None or len(raw) > _MAX_INPUT:
            return None
        m = _PLAIN.fullmatch(raw)
        if m is None:
            return None
        plus, rest = m.groups()
        digits = rest.translate(_DROP)
        if len(digits) < 3:  # phonenumbers' viability rule for short strings: let it say
            return None
        if plus:
            # "+": the calling code is the first 1-3 digits that are one (never from 0).
            if digits[0] == "0":
                return None
            if digits[:1] in _CALLING_CODES:
                n = 1
            elif digits[:2] in _CALLING_CODES:
                n = 2
            elif digits[:3] in _CALLING_CODES:
                n = 3
            else:
                return None
            cc = _CALLING_CODES[digits[:n]]
            national = digits[n:]
            plan, regions = self._calling_code(cc)
            if plan is None:
                return None
        else:
            if home.idd is not None and home.idd.match(digits):
                return None  # "00 44 ...": an international prefix, phonenumbers decides
            cc, national, plan = home.country_code, digits, home
            if digits.startswith(self._home_cc):
                # "1 212 555 0100" in the US: phonenumbers reads the region's own calling
                # code without "+" when the number is not viable with it and is without it,
                # or is too long with it (_maybe_extract_country_code).
                potential = home.strip_national_prefix(digits[len(self._home_cc):])
                if (not home.viable(digits) and home.viable(potential)) or \
                        home.length_result(digits) == _TOO_LONG:
                    national = potential
                    main = self._calling_code(cc)[0]
                    if main is None:
                        return None
                    plan = main
            regions = self._calling_code(cc)[1]
        if len(national) < _MIN_NSN:
            return None
        stripped = plan.strip_national_prefix(national)
        if plan.length_result(stripped) in (_IS_POSSIBLE, _TOO_LONG):
            national = stripped
        if len(national) > _MAX_NSN or not national.strip("0"):
            return None
        ntype = _number_type(regions, national)
        if ntype == _UNKNOWN:
            return IMPOSSIBLE
        e164 = f"+{cc}{national}"
        if ntype in _GEO_TYPES or (ntype == _MOBILE and cc in _GEO_MOBILE):
            return e164, self._geo_zones(e164)
        return e164, self._country_zones(cc, national)

    def _geo_zones(self, e164: str) -> str:
        # phonenumbers' time_zones_for_geographical_number: the longest prefix of the E.164
        # digits (at most TIMEZONE_LONGEST_PREFIX) that its table knows.
        for n in range(TIMEZONE_LONGEST_PREFIX, 0, -1):
            prefix = e164[1:1 + n]
            zones = self._geo.get(prefix)
            if zones is not None:
                return zones
            found = TIMEZONE_DATA.get(prefix)
            if found is not None:
                zones = self._geo[prefix] = zones_key(found)
                return zones
        return ""

    def _country_zones(self, cc: int, nsn: str) -> str:
        zones = self._country.get(cc)
        if zones is None:
            # Country-level zones depend on the calling code alone.
            zones = self._country[cc] = zones_key(
                pn_timezone.time_zones_for_number(_number(cc, nsn)))
        return zones


def _number_type(regions: list[_Plan | None], nsn: str) -> int:
    """phonenumbers' ``number_type``: the region of the number among those sharing its
    calling code (``_region_code_for_number_from_list``: leading digits when the region has
    them, else full validation), then its type there."""
    if len(regions) == 1:
        plan = regions[0]
        return plan.number_type(nsn) if plan is not None else _UNKNOWN
    for plan in regions:
        if plan is None:
            continue
        if plan.leading_digits is not None:
            if plan.leading_digits.match(nsn):
                return plan.number_type(nsn)
        else:
            t = plan.number_type(nsn)
            if t != _UNKNOWN:
                return t
    return _UNKNOWN


def _number(cc: int, nsn: str) -> phonenumbers.PhoneNumber:
    """The PhoneNumber phonenumbers.parse builds for this national significant number
    (its leading zeros as phonenumbers' _set_italian_leading_zeros_for_phone_number keeps
    them)."""
    num = phonenumbers.PhoneNumber(country_code=cc, national_number=int(nsn))
    if len(nsn) > 1 and nsn[0] == "0":
        num.italian_leading_zero = True
        zeros = len(nsn) - len(nsn.lstrip("0"))
        zeros = min(zeros, len(nsn) - 1)
        if zeros != 1:
            num.number_of_leading_zeros = zeros
    return num
