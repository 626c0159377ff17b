"""The staff desk: find a patient, see per study and purpose what may be shared and why,
record a paper or verbal consent, invite the patient. Staff only. (Their API tokens are
managed on access's pages, under /tokens/.)"""


from django.contrib import messages
from django.core import signing
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
    return _patient_page(request, record, PaperConsentForm(patient=record))


def _patient_page(request, record: Patient, form: PaperConsentForm, *, kept_scan: str = "",
                  kept_scan_name: str = "", status: int = 200):
    with transaction.atomic():
        # Opening a patient's record is itself a use of their data.
        ledger.record(action="phi.viewed", event_code=codes.PATIENT_RECORD, actor=_actor(request),
                      patient_ref=record.pk, details={"what": "patient page", "via": "desk"})
    studies, purposes, grid = selectors.scans_with_decisions(record, timezone.now())
    rows = [(study, [(p, grid[(study.pk, p.pk)]) for p in purposes]) for study in studies]
    return render(request, "desk/patient.html", {
        "patient": record, "rows": rows, "purposes": purposes,
        "history": selectors.patient_history(record)[:50],
        "form": form, "kept_scan": kept_scan, "kept_scan_name": kept_scan_name,
        **selectors.scope_terms()}, status=status)


KEPT_SCAN_SALT = "desk-kept-scan"


def _scan_attached(request, patient_pk: int) -> tuple[str, str] | None:
    """The scanned form of this submission: a new upload, stored (content-addressed, so
    storing it before the consent is harmless), or the one kept from an earlier attempt that
    had an error. Kept scans travel as a signed (sha256, name) for this patient only."""
    upload = request.FILES.get("scanned_form")
    if upload:
        return consent_attachment_store(upload)
    token = request.POST.get("kept_scan", "")
    if not token:
        return None
    try:
        pk, sha, name = signing.loads(token, salt=KEPT_SCAN_SALT, max_age=24 * 3600)
    except signing.BadSignature:
        raise ValidationError({"scanned_form": "the scan kept from before has expired; "
                                               "attach it again"}) from None
    if pk != patient_pk:
        raise ValidationError({"scanned_form": "attach the scan again"})
    return sha, name


@staff_only
@require_POST
def record_consent(request, patient_id: int):
    record = get_object_or_404(Patient, pk=patient_id)
    form = PaperConsentForm(request.POST, request.FILES, patient=record)
    # The scan is kept whatever else is wrong, so the clerk never attaches it twice.
    try:
        attachment = _scan_attached(request, record.pk)
    except ValidationError as exc:
        attachment = None
        form.is_valid()
        form.add_error("scanned_form", exc.message_dict["scanned_form"])
    if not form.is_valid():
        return _form_again(request, record, form, attachment)
    data = form.cleaned_data
    try:
        consent_record(
            patient=record, purpose=PurposeTree.load().get(data["purpose"]),
            decision=data["decision"], actor=_actor(request), source=data["source"],
            form=data["form_version"], scope_kind=data["scope_kind"],
            scope_value=data["scope_value"], effective_from=data["effective_from"],
            expires_at=data["expires_at"], witness=data["witness"],
            proxy_name=data["proxy_name"], proxy_relationship=data["proxy_relationship"],
            attachment=attachment)
    except ValidationError as exc:
        for field, errors in (exc.message_dict if hasattr(exc, "error_dict")
                              else {None: exc.messages}).items():
            form.add_error(field if field in form.fields else None, errors)
        return _form_again(request, record, form, attachment)
    messages.success(request, "Consent recorded.")
    return redirect("desk-patient", patient_id=record.pk)


def _form_again(request, record: Patient, form: PaperConsentForm,
                attachment: tuple[str, str] | None):
    """The page again, with every value as typed, each error beside its field and the
    scan kept; nothing was recorded."""
    messages.error(request, "Nothing was recorded yet: please correct the fields marked below.")
    kept = signing.dumps([record.pk, *attachment], salt=KEPT_SCAN_SALT) if attachment else ""
    return _patient_page(request, record, form, kept_scan=kept,
                         kept_scan_name=attachment[1] if attachment else "", status=400)


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
