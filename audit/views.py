"""The auditor console: read-only pages over the ledger. Auditors only; the one action is
running a verification, which changes nothing but adds its report."""

import json
from functools import wraps

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, JsonResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_http_methods, require_POST

from audit import charts as charts_module
from audit import selectors
from audit.csv_safety import SafeCsvWriter
from audit.fhir import audit_bundle
from audit.forms import DisclosureForm, EventSearchForm, ExportForm
from audit.models import AuditEvent, VerificationRun
from audit.registry import dataset_labels, is_auditor, patient_labels
from audit.verification import verification_run


def auditor_only(view):
    @login_required
    @wraps(view)
    def wrapped(request, *args, **kwargs):
        if not is_auditor(request.user):
            raise PermissionDenied
        return view(request, *args, **kwargs)

    return wrapped


@auditor_only
def dashboard(request):
    charts = [charts_module.consent_permit_rate(), charts_module.checks_allowed_denied(),
              charts_module.exports_per_dataset()]
    return render(request, "audit/dashboard.html", {
        "charts": [(chart, mark_safe(charts_module.bar_svg(chart)))  # noqa: S308 - escaped
                   for chart in charts],
        "last_run": VerificationRun.objects.order_by("-started_at").first(),
        "recent": selectors.event_page(selectors.EventFilters(), size=10)[0],
    })


@auditor_only
@require_POST
def verify_now(request):
    run = verification_run(trigger=f"console:{request.user.get_username()}")
    if run.ok:
        messages.success(request, f"Ledger intact: {run.checked} events checked.")
    else:
        messages.error(request, f"Ledger broken: {run.problem}")
    return redirect("audit-dashboard")


SEARCH_KEY = "audit_event_search"


@auditor_only
@require_http_methods(["GET", "POST"])
def events(request):
    """The search is POSTed and kept in the session: a patient's MRN or a study's UID never
    goes in a URL. Pages of the result are ?before=<event id>."""
    if request.method == "POST":
        form = EventSearchForm(request.POST)
        if form.is_valid():
            # Kept as typed, so the form shows what was typed and "until" a date alone
            # still means the end of that day when read back.
            request.session[SEARCH_KEY] = {k: form.data.get(k, "").strip()
                                           for k, v in form.cleaned_data.items()
                                           if k != "before" and v not in (None, "")}
            return redirect("audit-events")
        rows, next_before = [], None
    else:
        if request.GET.get("clear"):
            request.session.pop(SEARCH_KEY, None)
        saved = request.session.get(SEARCH_KEY, {})
        form = EventSearchForm(initial=saved)
        bound = EventSearchForm({**saved, "before": request.GET.get("before", "")})
        rows, next_before = [], None
        if bound.is_valid():
            data = bound.cleaned_data
            filters = selectors.EventFilters(**{k: v for k, v in data.items()
                                                if k != "before" and v not in (None, "")})
            rows, next_before = selectors.event_page(filters, before=data.get("before"))
        else:
            form = bound
    return render(request, "audit/events.html", {
        "form": form, "events": rows, "next_before": next_before,
        "searching": bool(request.session.get(SEARCH_KEY)),
        "patients": patient_labels(sorted({e.patient_ref for e in rows if e.patient_ref}))})


@auditor_only
def event_detail(request, event_id: int):
    try:
        event, link = selectors.event_with_link(event_id)
    except AuditEvent.DoesNotExist:
        raise Http404("No such event.") from None
    return render(request, "audit/event.html", {
        "event": event, "link": link,
        "details_json": json.dumps(event.details, indent=2, sort_keys=True, ensure_ascii=False),
        "patient": patient_labels([event.patient_ref]).get(event.patient_ref, ""),
        "dataset": dataset_labels([event.dataset_ref]).get(event.dataset_ref, "")})


CSV_FIELDS = ("id", "occurred_at", "action", "event_code", "outcome", "actor_label",
              "actor_role", "actor_ip", "api_token", "patient_ref", "study_uid", "dataset_ref",
              "purpose_code", "legal_basis", "reason", "correlation_id", "digest")


class _Echo:
    def write(self, value):
        return value


def _csv_stream(header, rows):
    writer = SafeCsvWriter(_Echo())
    yield writer.writerow(header)
    for row in rows:
        yield writer.writerow(row)


@auditor_only
@require_http_methods(["GET", "POST"])
def disclosures(request):
    """Accounting of disclosures (45 CFR 164.528): date, recipient, what, purpose. The MRN
    is POSTed, never put in the URL."""
    form = DisclosureForm(request.POST or None)
    rows = []
    if form.is_valid():
        rows = [{"date": e.occurred_at, "recipient": e.details.get("recipient")
                 or (f"dataset {e.dataset_ref}" if e.dataset_ref else e.actor_label),
                 "what": e.study_uid or e.details.get("what", ""), "purpose": e.purpose_code,
                 # Without a recorded legal basis, the patient's consent let it go out; the
                 # page and the CSV say so alike.
                 "legal_basis": e.legal_basis or "consent", "event": e.pk}
                for e in selectors.disclosures_for_mrn(form.cleaned_data["mrn"])]
        if request.POST.get("format") == "csv":
            response = StreamingHttpResponse(_csv_stream(
                ["date", "recipient", "what", "purpose", "legal_basis", "event"],
                ([r["date"].isoformat(), r["recipient"], r["what"], r["purpose"],
                  r["legal_basis"], r["event"]] for r in rows)), content_type="text/csv")
            response["Content-Disposition"] = 'attachment; filename="disclosures.csv"'
            return response
    template = "audit/disclosures_print.html" if request.POST.get("print") else \
        "audit/disclosures.html"
    return render(request, template, {"form": form, "rows": rows})


@auditor_only
def export(request):
    """Events of a time range as CSV or as a FHIR R4 bundle of AuditEvent resources."""
    form = ExportForm(request.GET or None)
    if not form.is_valid():
        return render(request, "audit/export.html", {"form": form},
                      status=400 if request.GET else 200)
    events = selectors.events_between(form.cleaned_data["since"], form.cleaned_data["until"])
    stamp = f'{form.cleaned_data["since"]:%Y%m%d}-{form.cleaned_data["until"]:%Y%m%d}'
    if form.cleaned_data["format"] == "fhir":
        response = JsonResponse(audit_bundle(events.iterator(chunk_size=2000)))
        response["Content-Disposition"] = f'attachment; filename="audit-events-{stamp}.json"'
        return response
    rows = ([getattr(e, f) if f != "occurred_at" else e.occurred_at.isoformat()
             for f in CSV_FIELDS] for e in events.iterator(chunk_size=2000))
    response = StreamingHttpResponse(_csv_stream(CSV_FIELDS, rows), content_type="text/csv")
    response["Content-Disposition"] = f'attachment; filename="audit-events-{stamp}.csv"'
    return response
