"""The second step of signing in, and setting it up."""

import segno
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_http_methods
from django_otp import login as otp_login
from django_otp import user_has_device

from access.forms import SecondFactorForm
from access.roles import is_privileged, person_actor
from access.two_factor import (
    authenticator_draft,
    is_verified,
    recovery_codes_left,
    two_factor_enrol,
    two_factor_verify,
)

PENDING_KEY = "two_factor_pending_key"



def _next(request) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()},
                                       require_https=request.is_secure()):
        return target
    return "/"


@login_required
@require_http_methods(["GET", "POST"])
def verify(request):
    if not user_has_device(request.user):
        return redirect("two-factor-setup")
    if is_verified(request.user):
        return redirect(_next(request))
    form = SecondFactorForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        device = two_factor_verify(user=request.user, code=form.cleaned_data["code"],
                                   actor=person_actor(request))
        if device is not None:
            otp_login(request, device)
            if device.name == "recovery codes":
                messages.warning(request, f"You used a recovery code; "
                                          f"{recovery_codes_left(request.user)} are left.")
            return redirect(_next(request))
        form.add_error("code", "That code is not right, or it was used already. Try the "
                               "code your app shows now, or one of your recovery codes.")
    return render(request, "access/two_factor_verify.html",
                  {"form": form, "next": _next(request)})


@login_required
@require_http_methods(["GET", "POST"])
def setup(request):
    """Set up an authenticator. Someone who already has one must pass it first."""
    if user_has_device(request.user) and not is_verified(request.user):
        return redirect("two-factor-verify")
    # The key waits in the session (signed, server-side) until a code from it is right.
    key = request.session.get(PENDING_KEY)
    device = authenticator_draft(request.user, key)
    request.session[PENDING_KEY] = device.key
    form = SecondFactorForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            confirmed, codes = two_factor_enrol(user=request.user, key=device.key,
                                                actor=person_actor(request),
                                                code=form.cleaned_data["code"])
        except ValidationError as exc:
            form.add_error("code", exc.message_dict["code"])
        else:
            del request.session[PENDING_KEY]
            otp_login(request, confirmed)
            return render(request, "access/two_factor_codes.html",
                          {"codes": codes, "next": _next(request)})
    qr = segno.make(device.config_url, error="m")
    return render(request, "access/two_factor_setup.html", {
        "form": form, "next": _next(request), "required": is_privileged(request.user),
        "has_device": user_has_device(request.user),
        "qr_svg": mark_safe(qr.svg_inline(scale=4, title="Authenticator set-up code")),  # noqa: S308 - generated SVG, no user input
        "secret": device.config_url.split("secret=")[1].split("&")[0],
    })
