"""Handlers by message kind. Higher apps register theirs in AppConfig.ready()."""

from collections.abc import Callable
from typing import Any

Handler = Callable[[dict[str, Any]], None]
GiveUp = Callable[[dict[str, Any], str], None]

_handlers: dict[str, Handler] = {}
_give_ups: dict[str, GiveUp] = {}


def register(kind: str, handler: Handler, *, on_give_up: GiveUp | None = None) -> None:
    """``on_give_up(payload, error)`` runs once when the message fails for the last time, so
    the owner of the work can say so (a job marked failed rather than queued forever)."""
    if kind in _handlers and _handlers[kind] is not handler:
        raise ValueError(f"a handler for {kind!r} is already registered")
    _handlers[kind] = handler
    if on_give_up is not None:
        _give_ups[kind] = on_give_up


def give_up_for(kind: str) -> GiveUp | None:
    return _give_ups.get(kind)


def handler_for(kind: str) -> Handler:
    try:
        return _handlers[kind]
    except KeyError:
        raise LookupError(f"no outbox handler registered for {kind!r}") from None
