"""Sign-in with its ledger events: every login and every failed login is recorded
(DICOM event 110114, User Authentication)."""

from django.contrib.auth import views as auth_views

from audit import codes, ledger
from audit.ledger import Actor
from audit.models import Outcome
from consent.roles import primary_role


class LoginView(auth_views.LoginView):
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
