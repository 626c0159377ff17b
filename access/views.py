"""Sign-in and password resets with their ledger events, and the pages where people
manage their API tokens.

Every login and every failed login is recorded (DICOM event 110114, User Authentication)."""

import re

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import user_passes_test
from django.core.exceptions import ValidationError
from django.db import transaction
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse_lazy
from django.views.decorators.http import require_POST

from access.forms import ApiTokenForm
from access.limits import seconds_to_wait, sign_in_wait
from access.models import ApiToken
from access.passwords import OutboxPasswordResetForm
from access.roles import ROLE_SCOPES, allowed_scopes, person_actor, primary_role, role_required
from access.tokens import api_token_create, api_token_revoke
from audit import codes, ledger
from audit.ledger import Actor
from audit.models import Outcome


def too_many_attempts(request, wait: int):
    response = render(request, "access/rate_limited.html", {"minutes": -(-wait // 60)},
                      status=429)
    response["Retry-After"] = str(wait)
    return response


class LoginView(auth_views.LoginView):
    def post(self, request, *args, **kwargs):
        wait = sign_in_wait(request, request.POST.get("username", ""))
        if wait is not None:
            ledger.record(action="login.failed", event_code=codes.USER_AUTHENTICATION,
                          outcome=Outcome.DENIED, reason="too many sign-in attempts",
                          actor=Actor(label=(request.POST.get("username") or "")[:150]
                                      or "(no username)", ip=request.META.get("REMOTE_ADDR")))
            return too_many_attempts(request, wait)
        return super().post(request, *args, **kwargs)

    def form_valid(self, form):
        response = super().form_valid(form)
        user = form.get_user()
        ledger.record(action="login.succeeded", event_code=codes.USER_AUTHENTICATION,
                      actor=Actor.for_user(user, role=primary_role(user),
                                           ip=self.request.META.get("REMOTE_ADDR")))
        return response

    def form_invalid(self, form):
        locked = getattr(self.request, "axes_locked_out", False)
        attempted = (form.data.get("username") or "")[:150]
        ledger.record(
            action="login.failed", event_code=codes.USER_AUTHENTICATION,
            outcome=Outcome.DENIED if locked else Outcome.FAILURE,
            actor=Actor(label=attempted or "(no username)", role="",
                        ip=self.request.META.get("REMOTE_ADDR")),
            reason="locked out after too many failures" if locked else "wrong credentials")
        return super().form_invalid(form)


class PasswordResetView(auth_views.PasswordResetView):
    form_class = OutboxPasswordResetForm
    template_name = "access/password_reset_form.html"
    success_url = reverse_lazy("password-reset-sent")

    def post(self, request, *args, **kwargs):
        wait = seconds_to_wait(request, group="password-reset",
                               rate=settings.CONSENTRY_RATES["password_reset"],
                               value=request.META.get("REMOTE_ADDR") or "unknown")
        if wait is not None:
            return too_many_attempts(request, wait)
        return super().post(request, *args, **kwargs)


class PasswordResetSentView(auth_views.PasswordResetDoneView):
    template_name = "access/password_reset_sent.html"


class PasswordResetConfirmView(auth_views.PasswordResetConfirmView):
    template_name = "access/password_reset_confirm.html"
    success_url = reverse_lazy("password-reset-complete")

    @transaction.atomic
    def form_valid(self, form):
        # The new password and its ledger event commit together.
        response = super().form_valid(form)
        user = form.user
        ledger.record(action="password_reset.completed", event_code=codes.USER_AUTHENTICATION,
                      actor=Actor.for_user(user, role=primary_role(user),
                                           ip=self.request.META.get("REMOTE_ADDR")))
        return response


class PasswordResetCompleteView(auth_views.PasswordResetCompleteView):
    template_name = "access/password_reset_complete.html"



# Any role that may hand a scope to another system manages its own tokens here.
token_holders = role_required(*(role for role, scopes in ROLE_SCOPES.items() if scopes))


@token_holders
def tokens(request):
    allowed = allowed_scopes(request.user)
    form = ApiTokenForm(request.POST or None, allowed=allowed)
    secret = None
    if request.method == "POST" and form.is_valid():
        try:
            _, secret = api_token_create(
                owner=request.user, name=form.cleaned_data["name"],
                scopes=form.cleaned_data["scopes"], expires_at=form.cleaned_data["expires_at"],
                actor=person_actor(request))
        except ValidationError as exc:
            for field, errors in exc.message_dict.items():
                form.add_error(field if field in form.fields else None, errors)
        else:
            form = ApiTokenForm(allowed=allowed)
    own = ApiToken.objects.filter(owner=request.user).order_by("-created_at")
    return render(request, "access/tokens.html", {"form": form, "tokens": own,
                                                  "secret": secret})


@token_holders
@require_POST
def revoke_token(request, token_id: int):
    # People revoke their own tokens; others' answer 404 like a missing one.
    token = get_object_or_404(ApiToken, pk=token_id, owner=request.user)
    api_token_revoke(token=token, actor=person_actor(request))
    messages.success(request, f"Token “{token.name}” revoked.")
    return redirect("tokens")


@user_passes_test(lambda user: user.is_active and user.is_superuser)
def all_tokens(request):
    """Every token, with what its owner's roles still allow, for admins to revoke any."""
    if request.method == "POST":
        # The token's number from the form; anything else names no token (a 404, not a 500).
        token_id = request.POST.get("token", "")
        token = get_object_or_404(ApiToken, pk=int(token_id)
                                  if re.fullmatch(r"[0-9]{1,18}", token_id) else 0)
        api_token_revoke(token=token, actor=person_actor(request))
        messages.success(request, f"Token “{token.name}” of {token.owner} revoked.")
        return redirect("tokens-all")
    rows = [(token, sorted(set(token.scopes) - allowed_scopes(token.owner)))
            for token in ApiToken.objects.select_related("owner").order_by("-created_at")]
    return render(request, "access/all_tokens.html", {"rows": rows})
