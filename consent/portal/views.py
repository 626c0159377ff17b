"""The patient portal. Each view: parse, check access (404 if not yours), one call into the
domain, render. Patients and guardians only ever reach patients_for_user()."""

from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_http_methods

from access.roles import Role
from audit.ledger import Actor
from consent import selectors
from consent.engine import PurposeTree
from consent.invitations import InviteInvalid, invite_accept, invite_check
from consent.models import ScopeKind, Source
from consent.patient_words import reasons_for, reasons_grid, uses_in_words
from consent.portal.forms import ChoiceChangeForm, SetPasswordForm
from consent.services import consent_reaffirm, consent_record, normalise_scope
from consent.wording import mid_sentence, scan_name, written_date, your_scope
from registry import selectors as registry_selectors


def _context(request, patient, tab):
    acting = selectors.guardianship(request.user, patient)
    return {"patient": patient, "acting_for": acting, "tab": tab,
            "others": selectors.patients_for_user(request.user).exclude(pk=patient.pk),
            "needs_review": selectors.needs_review(patient)}


def _patient_actor(request) -> Actor:
    return Actor.for_user(request.user, role=Role.PATIENT, ip=request.META.get("REMOTE_ADDR"))


def _proxy(request, patient) -> dict[str, str]:
    """Who chose, when a guardian acts for a dependant; empty when patients act for
    themselves."""
    acting = selectors.guardianship(request.user, patient)
    if acting is None:
        return {"proxy_name": "", "proxy_relationship": ""}
    return {"proxy_name": request.user.get_full_name() or request.user.get_username(),
            "proxy_relationship": acting.relationship}


@login_required
def portal_home(request):
    patients = list(selectors.patients_for_user(request.user)[:2])
    if not patients:
        return render(request, "portal/no_record.html", status=404)
    own = next((p for p in patients if p.user_id == request.user.pk), patients[0])
    return redirect("portal-choices", patient_id=own.pk)


@login_required
def choices(request, patient_id: int):
    patient = selectors.patient_for_user(request.user, patient_id)
    now = timezone.now()
    studies = list(patient.studies.order_by("-study_date"))
    return render(request, "portal/choices.html", {
        **_context(request, patient, "choices"),
        "choices": selectors.purpose_choices(patient, now),
        "exceptions": _in_words(patient, selectors.exceptions(patient, now)),
        "studies": studies,
        "current_form": selectors.current_form(),
        **selectors.scan_kinds(patient),
        "form": ChoiceChangeForm(),
    })


def _in_words(patient, records) -> list[tuple]:
    """Each record with its reach in the patient's words, a scan by its name (never its
    UID)."""
    names = {s.study_uid: scan_name(s.description, s.modalities)
             for s in patient.studies.filter(
                 study_uid__in=[r.scope_value for r in records if r.scope_kind == "study"])}
    return [(r, your_scope(r.scope_kind, r.scope_value, names.get(r.scope_value, "")))
            for r in records]


@login_required
def receipt(request, patient_id: int):
    """A copy of the choices in force today, to print or save as a PDF."""
    patient = selectors.patient_for_user(request.user, patient_id)
    now = timezone.now()
    return render(request, "portal/receipt.html", {
        **_context(request, patient, "choices"), "now": now,
        "choices": selectors.purpose_choices(patient, now),
        "exceptions": _in_words(patient, selectors.exceptions(patient, now)),
        "current_form": selectors.current_form()})


@login_required
def consent_text(request, patient_id: int, form_id: int):
    """The exact text of a consent form version, as the patient saw it when choosing."""
    patient = selectors.patient_for_user(request.user, patient_id)
    form = selectors.consent_form_by_id(form_id)
    return render(request, "portal/consent_text.html", {
        **_context(request, patient, "history"), "form": form,
        "is_current": form == selectors.current_form(code=form.code)})


@login_required
@require_http_methods(["GET", "POST"])
def change(request, patient_id: int):
    """A first POST shows what will change and asks to confirm; the confirmation's POST
    records it. POSTed, because a scan's StudyInstanceUID must never go in a URL."""
    patient = selectors.patient_for_user(request.user, patient_id)
    if request.method == "GET":
        return redirect("portal-choices", patient_id=patient.pk)
    form = ChoiceChangeForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("That change could not be understood; nothing was changed."))
        return redirect("portal-choices", patient_id=patient.pk)
    data = form.cleaned_data
    try:
        purpose = PurposeTree.load().get(data["purpose"])
    except LookupError:
        messages.error(request, _("Unknown purpose; nothing was changed."))
        return redirect("portal-choices", patient_id=patient.pk)
    try:
        # The stored form (a vocabulary code), so the confirmation shows what will be kept.
        scope_value = normalise_scope(patient=patient, scope_kind=data["scope_kind"],
                                      scope_value=data["scope_value"])
    except ValidationError as exc:
        messages.error(request, _("Nothing was changed: %(why)s")
                       % {"why": "; ".join(exc.messages)})
        return redirect("portal-choices", patient_id=patient.pk)
    scope_label = _scope_label(patient, data["scope_kind"], scope_value)
    if request.POST.get("confirmed") != "yes":
        return render(request, "portal/confirm.html", {
            **_context(request, patient, "choices"), "purpose": purpose,
            "decision": data["decision"], "scope_label": scope_label,
            "scope_kind": data["scope_kind"], "scope_value": scope_value,
            "covered": selectors.scans_covered(
                patient, scope_kind=data["scope_kind"], scope_value=scope_value,
                decision=data["decision"])})
    try:
        consent_record(
            patient=patient, purpose=purpose, decision=data["decision"],
            actor=_patient_actor(request), source=Source.PORTAL,
            form=selectors.current_form(), scope_kind=data["scope_kind"],
            scope_value=scope_value, **_proxy(request, patient))
    except ValidationError as exc:
        messages.error(request, _("Nothing was changed: %(why)s")
                       % {"why": "; ".join(exc.messages)})
        return redirect("portal-choices", patient_id=patient.pk)
    words = {"use": mid_sentence(purpose.name), "scope": scope_label}
    if data["decision"] == "permit":
        saved = _("Saved: “Yes” to %(use)s for %(scope)s.") % words
    else:
        # Saved means committed; telling dataset holders runs after (through the outbox),
        # so the page promises it without waiting for it.
        saved = (_("Saved: “No” to %(use)s for %(scope)s.") % words + " "
                 + _("Anyone already holding these scans for this use will be told; that may "
                     "take a few minutes."))
    messages.success(request, saved + " " + _("You can change this at any time."))
    return redirect("portal-choices", patient_id=patient.pk)


def _scope_label(patient, kind: str, value: str) -> str:
    if kind == ScopeKind.STUDY:
        study = patient.studies.filter(study_uid=value).first()
        if study is None:
            return _("one scan")
        scope = your_scope(kind, value, scan_name(study.description, study.modalities))
        if study.study_date:
            return _("%(scope)s of %(date)s") % {"scope": scope,
                                                 "date": written_date(study.study_date)}
        return scope
    return your_scope(kind, value)


@login_required
@require_http_methods(["POST"])
def reaffirm(request, patient_id: int):
    """"Keep my choices" after the consent text changed."""
    patient = selectors.patient_for_user(request.user, patient_id)
    kept = consent_reaffirm(patient=patient, form=selectors.current_form(),
                            source=Source.PORTAL, actor=_patient_actor(request),
                            **_proxy(request, patient))
    messages.success(request, ngettext(
        "Thank you. Your %(count)d choice is kept under the new text.",
        "Thank you. Your %(count)d choices are kept under the new text.", len(kept))
        % {"count": len(kept)})
    return redirect("portal-choices", patient_id=patient.pk)


@login_required
def scans(request, patient_id: int):
    patient = selectors.patient_for_user(request.user, patient_id)
    studies, purposes, grid = selectors.scans_with_decisions(patient, timezone.now())
    reasons = reasons_grid(grid)
    rows = [(study, [(purpose, grid[(study.pk, purpose.pk)], reasons[(study.pk, purpose.pk)])
                     for purpose in purposes])
            for study in studies]
    return render(request, "portal/scans.html", {
        **_context(request, patient, "scans"), "rows": rows, "purposes": purposes})


@login_required
def scan(request, patient_id: int, study_id: int):
    patient = selectors.patient_for_user(request.user, patient_id)
    study = registry_selectors.study_for_patient(patient, study_id)
    return render(request, "portal/scan.html", {
        **_context(request, patient, "scans"), "study": study,
        "decisions": reasons_for(study, selectors.study_decisions(study, timezone.now()))})


@login_required
def history(request, patient_id: int):
    patient = selectors.patient_for_user(request.user, patient_id)
    return render(request, "portal/history.html", {
        **_context(request, patient, "history"),
        "records": _in_words(patient, list(selectors.patient_history(patient)))})


@login_required
def uses(request, patient_id: int):
    patient = selectors.patient_for_user(request.user, patient_id)
    return render(request, "portal/uses.html", {
        **_context(request, patient, "uses"),
        "uses": uses_in_words(patient, list(selectors.patient_uses(patient)))})


@require_http_methods(["GET", "POST"])
def accept_invite(request, token: str):
    try:
        invite = invite_check(token=token)
    except InviteInvalid as exc:
        return render(request, "portal/invite_invalid.html", {"reason": exc.reason},
                      status=410)
    form = SetPasswordForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            user = invite_accept(token=token, password=form.cleaned_data["password1"],
                                 ip=request.META.get("REMOTE_ADDR"))
        except InviteInvalid as exc:
            return render(request, "portal/invite_invalid.html", {"reason": exc.reason},
                          status=410)
        except ValidationError as exc:
            form.add_error("password1", exc)
        else:
            login(request, user, backend="django.contrib.auth.backends.ModelBackend")
            messages.success(request, f"Welcome. Your username is “{user.get_username()}”.")
            return redirect(reverse("portal-choices", kwargs={"patient_id": invite.patient_id}))
    return render(request, "portal/invite_accept.html", {"form": form, "invite": invite})
