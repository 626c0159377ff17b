"""Staff desk pages (the rest of the desk arrives with the staff-desk issue)."""

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.shortcuts import get_object_or_404, render
from django.urls import reverse

from audit.ledger import Actor
from consent.forms import InviteForm
from consent.models import Patient
from consent.roles import Role, has_role
from consent.services import patient_invite


@login_required
def invite(request, patient_id: int):
    if not has_role(request.user, Role.STAFF):
        raise PermissionDenied
    patient = get_object_or_404(Patient, pk=patient_id)
    form = InviteForm(request.POST or None)
    link = None
    if request.method == "POST" and form.is_valid():
        try:
            made, token = patient_invite(
                patient=patient, email=form.cleaned_data["email"],
                actor=Actor.for_user(request.user, role=Role.STAFF,
                                     ip=request.META.get("REMOTE_ADDR")))
        except ValidationError as exc:
            form.add_error("email", exc)
        else:
            link = request.build_absolute_uri(reverse("portal-invite", args=[token]))
            return render(request, "desk/invite_sent.html",
                          {"patient": patient, "link": link, "invite": made})
    return render(request, "desk/invite.html", {"patient": patient, "form": form})
