"""The staff desk: find a patient, see per study and purpose what may be shared and why,
record a paper or verbal consent, invite the patient. Staff only. (Their API tokens are
managed on access's pages, under /tokens/.)"""


from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db import transaction
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST

from access.roles import Role, role_required
from audit import codes, ledger
from audit.ledger import Actor
from consent import selectors
from consent.desk.forms import InviteForm, PaperConsentForm, SearchForm
from consent.engine import PurposeTree
from consent.invitations import patient_invite
from consent.services import consent_attachment_store, consent_record
from registry import events as registry_events
from registry import selectors as registry_selectors
from registry.models import Patient

staff_only = role_required(Role.STAFF)


def _actor(request) -> Actor:
    return Actor.for_user(request.user, role=Role.STAFF, ip=request.META.get("REMOTE_ADDR"))


@staff_only
@require_http_methods(["GET", "POST"])
def search(request):
    """The terms are POSTed, never put in the URL (access logs); each search is logged."""
    form = SearchForm(request.POST or None)
    patients = None
    if form.is_valid():
        with transaction.atomic():
            ledger.record_drafts([registry_events.phi_searched(
                actor=_actor(request), what="patients", via="desk",
                criteria={"q": form.cleaned_data["q"]})])
        # At most 50, newest first from SQL, then by name for reading (names are encrypted,
        # so they are sorted here, on a bounded page).
        patients = registry_selectors.patients_sorted_by_name(
            registry_selectors.patient_search(query=form.cleaned_data["q"])[:50])
        if len(patients) == 1:
            return redirect("desk-patient", patient_id=patients[0].pk)
    return render(request, "desk/search.html", {"form": form, "patients": patients})


@staff_only
def patient(request, patient_id: int):
    record = get_object_or_404(Patient, pk=patient_id)
    with transaction.atomic():
        # Opening a patient's record is itself a use of their data.
        ledger.record(action="phi.viewed", event_code=codes.PATIENT_RECORD, actor=_actor(request),
                      patient_ref=record.pk, details={"what": "patient page", "via": "desk"})
    studies, purposes, grid = selectors.scans_with_decisions(record, timezone.now())
    rows = [(study, [(p, grid[(study.pk, p.pk)]) for p in purposes]) for study in studies]
    return render(request, "desk/patient.html", {
        "patient": record, "rows": rows, "purposes": purposes,
        "history": selectors.patient_history(record)[:50],
        "form": PaperConsentForm(patient=record), **selectors.scope_terms()})


@staff_only
@require_POST
def record_consent(request, patient_id: int):
    record = get_object_or_404(Patient, pk=patient_id)
    form = PaperConsentForm(request.POST, request.FILES, patient=record)
    if not form.is_valid():
        messages.error(request, "Nothing was recorded: " + "; ".join(
            f"{_label(form, field)}: {' '.join(errors)}" for field, errors in form.errors.items()))
        return redirect("desk-patient", patient_id=record.pk)
    data = form.cleaned_data
    try:
        attachment = (consent_attachment_store(data["scanned_form"])
                      if data["scanned_form"] else None)
        consent_record(
            patient=record, purpose=PurposeTree.load().get(data["purpose"]),
            decision=data["decision"], actor=_actor(request), source=data["source"],
            form=data["form_version"], scope_kind=data["scope_kind"],
            scope_value=data["scope_value"], effective_from=data["effective_from"],
            expires_at=data["expires_at"], witness=data["witness"],
            proxy_name=data["proxy_name"], proxy_relationship=data["proxy_relationship"],
            attachment=attachment)
    except ValidationError as exc:
        messages.error(request, "Nothing was recorded: " + "; ".join(exc.messages))
    else:
        messages.success(request, "Consent recorded.")
    return redirect("desk-patient", patient_id=record.pk)


def _label(form: PaperConsentForm, field: str) -> str:
    """The field as the clerk sees it on the page ("Scope value"), its name otherwise."""
    if field in form.fields:
        return str(form.fields[field].label or field.replace("_", " ").capitalize())
    return "form"


@staff_only
def invite(request, patient_id: int):
    record = get_object_or_404(Patient, pk=patient_id)
    form = InviteForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            made = patient_invite(patient=record, email=form.cleaned_data["email"],
                                  actor=_actor(request))
        except ValidationError as exc:
            form.add_error("email", exc.message_dict.get("email", exc.messages))
        else:
            # The link goes to the patient's email only; staff see that it was sent.
            return render(request, "desk/invite_sent.html", {"patient": record, "invite": made})
    return render(request, "desk/invite.html", {"patient": record, "form": form})
