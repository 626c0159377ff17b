"""The API's JSON parser: DRF's, bounded.

``json`` recurses once per level of nesting, so a body of 100,000 ``[`` raised
RecursionError (a 500) before any serializer saw it. And DRF reads the request stream
itself, past Django's ``DATA_UPLOAD_MAX_MEMORY_SIZE`` check on ``request.body``. Here both
limits are enforced first and answered as 400s with a clear message."""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser
from rest_framework.utils.json import strict_constant

# No payload of ours nests more than a few levels; 32 leaves room and stays far below
# Python's recursion limit.
MAX_DEPTH = 32


def json_depth(value: Any) -> int:
    """How deeply lists and objects nest (a scalar is 0), without recursion."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, depth)
        if depth > MAX_DEPTH:
            break
        stack.extend((child, depth + 1) for child in children)
    return deepest


class BoundedJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None) -> Any:
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        raw = stream.read(limit + 1) if limit is not None else stream.read()
        if limit is not None and len(raw) > limit:
            raise ParseError(f"The JSON body is too large: at most {limit} bytes.")
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        try:
            text = raw.decode(encoding)
        except UnicodeDecodeError as exc:
            raise ParseError(f"JSON parse error - not {encoding}: {exc.reason}") from None
        try:
            data = json.loads(text, parse_constant=strict_constant if self.strict
                              else None)
        except RecursionError:
            raise ParseError(f"The JSON body is nested too deeply: at most {MAX_DEPTH} "
                             "levels.") from None
        except ValueError as exc:
            raise ParseError(f"JSON parse error - {exc}") from None
        if json_depth(data) > MAX_DEPTH:
            raise ParseError(f"The JSON body is nested too deeply: at most {MAX_DEPTH} "
                             "levels.")
        return data
