"""The auditor console: read-only pages over the ledger. Auditors only; the one action is
running a verification, which changes nothing but adds its report."""

import json
from functools import wraps

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from audit import selectors
from audit.forms import EventSearchForm
from audit.models import AuditEvent, VerificationRun
from audit.registry import patient_labels
from audit.verification import verification_run

AUDITOR_GROUP = "auditor"  # the role's group name; the ledger knows no other app's models


def auditor_only(view):
    @login_required
    @wraps(view)
    def wrapped(request, *args, **kwargs):
        if not request.user.groups.filter(name=AUDITOR_GROUP).exists():
            raise PermissionDenied
        return view(request, *args, **kwargs)

    return wrapped


@auditor_only
def dashboard(request):
    return render(request, "audit/dashboard.html", {
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


@auditor_only
def events(request):
    form = EventSearchForm(request.GET or None)
    rows, next_before = [], None
    if not request.GET or form.is_valid():
        data = form.cleaned_data if request.GET else {}
        filters = selectors.EventFilters(**{k: v for k, v in data.items()
                                            if k != "before" and v not in (None, "")})
        rows, next_before = selectors.event_page(filters, before=data.get("before"))
    query = request.GET.copy()
    query.pop("before", None)
    return render(request, "audit/events.html", {
        "form": form, "events": rows, "next_before": next_before,
        "query": query.urlencode(),
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
        "patient": patient_labels([event.patient_ref]).get(event.patient_ref, "")})
