"""Rate limits on the shared cache (django-ratelimit): sign-in per address across usernames
and per username, and API calls per token (or per person, for sessions). Over the limit
the answer is 429 with Retry-After. Rates come from settings.CONSENTRY_RATES."""

from __future__ import annotations

from django.conf import settings
from django_ratelimit.core import get_usage
from rest_framework.throttling import BaseThrottle

from access.models import ApiToken


def seconds_to_wait(request, *, group: str, value: str, rate: str) -> int | None:
    """Count this request against ``value``'s budget in ``group``; None while within it,
    else how long until the window ends."""
    usage = get_usage(request, group=group, key=lambda _group, _request: value, rate=rate,
                      increment=True)
    if usage is None or not usage["should_limit"]:
        return None
    return max(1, usage["time_left"])


def sign_in_wait(request, username: str) -> int | None:
    """Both budgets are counted on every attempt, so neither can be saved up."""
    by_address = seconds_to_wait(request, group="sign-in-address", rate=_rate("sign_in_address"),
                                 value=request.META.get("REMOTE_ADDR") or "unknown")
    by_username = seconds_to_wait(request, group="sign-in-username",
                                  rate=_rate("sign_in_username"),
                                  value=username.strip().lower()[:150] or "(none)")
    waits = [w for w in (by_address, by_username) if w]
    return max(waits) if waits else None


class ApiRateLimit(BaseThrottle):
    """Every API call counts against its token (or the signed-in person)."""

    def allow_request(self, request, view) -> bool:
        if isinstance(request.auth, ApiToken):
            who = f"token:{request.auth.prefix}"
        elif request.user and request.user.is_authenticated:
            who = f"user:{request.user.pk}"
        else:
            who = f"address:{request.META.get('REMOTE_ADDR')}"
        self.wait_seconds = seconds_to_wait(request, group="api", value=who, rate=_rate("api"))
        return self.wait_seconds is None

    def wait(self) -> float | None:
        return self.wait_seconds


def _rate(name: str) -> str:
    return settings.CONSENTRY_RATES[name]
