"""Handlers by message kind. Higher apps register theirs in AppConfig.ready()."""

from collections.abc import Callable
from typing import Any

Handler = Callable[[dict[str, Any]], None]

_handlers: dict[str, Handler] = {}


def register(kind: str, handler: Handler) -> None:
    if kind in _handlers and _handlers[kind] is not handler:
        raise ValueError(f"a handler for {kind!r} is already registered")
    _handlers[kind] = handler


def handler_for(kind: str) -> Handler:
    try:
        return _handlers[kind]
    except KeyError:
        raise LookupError(f"no outbox handler registered for {kind!r}") from None
