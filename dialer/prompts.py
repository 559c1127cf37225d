"""Per-language campaign prompts: ``safe_harbour_prompt`` and ``machine_message``.

A campaign file gives each prompt either once (a WAV path or a text for TTS, in the
campaign's ``language``) or per language::

    language: en
    safe_harbour_prompt:
      en: "This call was from Acme. Please call us back on 020 7946 0999."
      es: safe-harbour-es.wav

The contact's language (the list's ``language`` column, or a mapped language column)
picks the entry: the exact tag (``es-mx``), then its primary language (``es``), then the
campaign's language (the fallback, which a mapping must have: the file is refused
otherwise).  A text is spoken with that language's espeak-ng voice.  Pure functions: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

__all__ = ["LANGUAGE_TAG", "PromptSpec", "choose_prompt", "normalise_language",
           "prompt_variants"]

PromptSpec = str | Mapping[str, str]
"""One prompt (WAV path or TTS text) or language tag -> prompt."""

LANGUAGE_TAG = re.compile(r"^[a-z]{2,3}(-[a-z0-9]{2,8})*$")
"""A BCP 47-like tag once normalised (``es``, ``pt-br``, ``zh-yue``)."""


def normalise_language(value: Any) -> str | None:
    """``"ES_mx "`` -> ``"es-mx"``; None for anything that is not a language tag."""
    if not isinstance(value, str):
        return None
    tag = value.strip().lower().replace("_", "-")
    return tag if LANGUAGE_TAG.match(tag) else None


def choose_prompt(spec: PromptSpec | None, contact_language: Any, campaign_language: str
                  ) -> tuple[str | None, str]:
    """``(prompt, language)`` for one contact: the prompt to play (None: none set) and the
    language its TTS speaks.

    A single prompt is in the campaign's language whoever is called.  A mapping gives the
    contact's language's entry (exact tag, then primary subtag), else the campaign's."""
    fallback = normalise_language(campaign_language) or "en"
    if spec is None or isinstance(spec, str):
        return spec, fallback
    entries = {normalise_language(k) or str(k): v for k, v in spec.items()}
    wanted = normalise_language(contact_language)
    if wanted is not None:
        for tag in (wanted, wanted.split("-", 1)[0]):
            if tag in entries:
                return entries[tag], tag
    if fallback in entries:
        return entries[fallback], fallback
    # A stored mapping without the fallback (validated files always have it): any entry
    # rather than silence, in its own language.
    tag, prompt = next(iter(entries.items()), (fallback, None))
    return prompt, tag


def prompt_variants(spec: PromptSpec | None, campaign_language: str
                    ) -> Iterator[tuple[str, str]]:
    """Every ``(prompt, language)`` a campaign may play (to render them before dialling)."""
    if spec is None:
        return
    if isinstance(spec, str):
        yield spec, normalise_language(campaign_language) or "en"
        return
    for tag, prompt in spec.items():
        yield prompt, normalise_language(tag) or str(tag)
