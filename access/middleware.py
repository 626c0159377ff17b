"""Every request of a signed-in person passes here after django-otp's middleware: a session
that still owes its second factor reaches nothing but the steps that settle it, and
privileged sessions expire after a short idle time."""

from django.conf import settings
from django.http import JsonResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.cache import add_never_cache_headers
from django.utils.http import urlencode
from django_otp import user_has_device

from access.roles import is_privileged
from access.two_factor import is_verified, needs_second_factor

# Pages a half-signed-in session may reach: the steps themselves and the ways out.
OPEN_BEFORE_SECOND_FACTOR = frozenset({
    "login", "logout", "two-factor-verify", "two-factor-setup", "password-reset",
    "password-reset-sent", "password-reset-confirm", "password-reset-complete",
    "portal-invite",
})


class SecondFactorMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated and is_privileged(user):
            # Idle timeout: each request starts the clock again.
            request.session.set_expiry(settings.CONSENTRY_PRIVILEGED_IDLE_SECONDS)
        return self.get_response(request)

    def process_view(self, request, view_func, view_args, view_kwargs):
        user = getattr(request, "user", None)
        if user is None or not needs_second_factor(user) or is_verified(user):
            return None
        match = request.resolver_match
        if match is not None and match.url_name in OPEN_BEFORE_SECOND_FACTOR:
            return None
        if request.path.startswith("/api/"):
            return JsonResponse({"error": {
                "message": "Finish signing in with your second factor first (or use an API "
                           "token).", "field": None}}, status=403)
        step = "two-factor-verify" if user_has_device(user) else "two-factor-setup"
        return redirect(f"{reverse(step)}?{urlencode({'next': request.get_full_path()})}")


class NoStoreMiddleware:
    """Answers to a signed-in person or to an API token hold personal data (or say whose
    data exists): browsers and proxies are told not to keep them, so a shared computer's
    back button after signing out, or a proxy's disk cache, shows nothing. A view that set
    its own Cache-Control keeps it; anonymous public pages are left alone."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        user = getattr(request, "user", None)
        personal = (user is not None and user.is_authenticated) \
            or "HTTP_AUTHORIZATION" in request.META
        if personal and not response.has_header("Cache-Control"):
            add_never_cache_headers(response)
        return response
