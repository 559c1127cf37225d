"""Input validation helpers: the Luhn check and spoken digit strings (en, es, fr)."""

from __future__ import annotations

import re

_WORDS = {
    # English
    "zero": "0", "oh": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5",
    "six": "6", "seven": "7", "eight": "8", "nine": "9",
    # Spanish
    "cero": "0", "uno": "1", "una": "1", "dos": "2", "tres": "3", "cuatro": "4", "cinco": "5",
    "seis": "6", "siete": "7", "ocho": "8", "nueve": "9",
    # French
    "zéro": "0", "un": "1", "une": "1", "deux": "2", "trois": "3", "quatre": "4", "cinq": "5",
    "sept": "7", "huit": "8", "neuf": "9",
}
_TOKEN = re.compile(r"\d|[^\W\d_]+", re.UNICODE)


def luhn_ok(digits: str) -> bool:
    """True if ``digits`` passes the Luhn (mod 10) check (ISO/IEC 7812-1 annex B)."""
    if not digits.isdigit() or len(digits) < 2:
        return False
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def spoken_digits(text: str) -> str:
    """Digits said one by one ("four one two", "cuatro uno dos", "4 1 2") -> "412".

    Words that are not digits are skipped ("my number is ...")."""
    out = []
    for tok in _TOKEN.findall(text.lower()):
        if tok.isdigit():
            out.append(tok)
        elif tok in _WORDS:
            out.append(_WORDS[tok])
    return "".join(out)
