"""YAML loading that remembers where each mapping and sequence started (1-based lines),
and maps pydantic error locations back to those lines."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import yaml


class LineDict(dict[str, Any]):
    """A mapping that knows its start line and the line of each of its keys."""

    line: int | None = None
    key_lines: dict[str, int]


class LineList(list[Any]):
    """A sequence that knows its start line."""

    line: int | None = None


class LineLoader(yaml.SafeLoader):  # type: ignore[misc]
    """A SafeLoader whose mappings record ``node.start_mark.line + 1``."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> Any:
        mapping = super().construct_mapping(node, deep=deep)
        out = LineDict(mapping)
        out.line = node.start_mark.line + 1
        out.key_lines = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, str):
                out.key_lines[key] = key_node.start_mark.line + 1
        return out

    def construct_sequence(self, node: yaml.SequenceNode, deep: bool = False) -> Any:
        out = LineList(super().construct_sequence(node, deep=deep))
        out.line = node.start_mark.line + 1
        return out


def _construct_map(loader: LineLoader, node: yaml.MappingNode) -> Any:
    return loader.construct_mapping(node, deep=True)


def _construct_seq(loader: LineLoader, node: yaml.SequenceNode) -> Any:
    return loader.construct_sequence(node, deep=True)


LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_map)
LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_seq)


def load_text(text: str, *, json_first: bool = False) -> Any:
    """Parse YAML (JSON is YAML too, so a ``.json`` file gets line numbers as well).

    Raises ``yaml.YAMLError`` on malformed text."""
    if json_first:
        json.loads(text)  # a strict JSON error message for .json files
    return yaml.load(text, Loader=LineLoader)


def line_at(data: Any, loc: Sequence[Any]) -> int | None:
    """The line of the deepest container (or key) reached by following ``loc``.

    Location elements that are not in the data (pydantic's discriminator tags, the
    ``function-after`` markers) are skipped."""
    best: int | None = getattr(data, "line", None)
    cur = data
    for part in loc:
        if isinstance(cur, dict) and part in cur:
            kl = getattr(cur, "key_lines", {}).get(part)
            cur = cur[part]
            best = kl if kl is not None else getattr(cur, "line", None) or best
        elif isinstance(cur, list) and isinstance(part, int) and 0 <= part < len(cur):
            cur = cur[part]
            best = getattr(cur, "line", None) or best
    return best
