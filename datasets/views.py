"""The steward's pages: datasets, the decision preview, running an export, its progress
(polled by a small script, no reload), the version's fates, the download, notices."""

from urllib.parse import urlencode

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db import transaction
from django.db.models import Count, Q
from django.http import FileResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from access.roles import Role, role_required
from audit import codes, ledger
from audit.ledger import Actor
from datasets import selectors
from datasets.approvals import approval_state, legal_basis_decide
from datasets.delivery import dataset_destination_set, destination_names
from datasets.exports import dataset_create, export_preview, export_request
from datasets.forms import DatasetForm, DestinationForm
from datasets.models import (
    Dataset,
    DatasetVersion,
    DeliveryStatus,
    Enforcement,
    VersionStatus,
    WithdrawalNotice,
)
from datasets.packaging import NotDownloadable, version_download, zip_name
from datasets.selection import selected_studies
from datasets.signing import public_pem, published_keys
from datasets.withdrawals import withdrawal_confirm
from outbox.services import MAX_ATTEMPTS

steward_only = role_required(Role.STEWARD)
FATES_PER_PAGE = 100  # a page, not a dump; the manifest and the API hold every study
FATE_FILTERS = {"all": {}, "included": {"included": True, "violation": False},
                "left-out": {"included": False}, "violation": {"violation": True}}
# (Not by accession number: it is encrypted at rest, so SQL cannot order by it.)
FATE_SORTS = {"fate": ("included", "reason", "pk"), "date": ("study__study_date", "pk"),
              "reason": ("reason", "pk"), "files": ("-files", "pk")}


def _fates_listing(request, version: DatasetVersion):
    """One page of the version's studies, filtered by fate and reason and sorted, from
    GET parameters that carry no PHI (choices only; unknown values fall back to the
    defaults)."""
    fate = request.GET.get("fate", "all")
    fate = fate if fate in FATE_FILTERS else "all"
    sort = request.GET.get("sort", "fate")
    sort = sort if sort in FATE_SORTS else "fate"
    reasons = [r for r, _ in selectors.excluded_by_reason(version).items()]
    reason = request.GET.get("reason", "")
    reason = reason if reason in reasons else ""
    fates = version.studies.select_related("study").filter(**FATE_FILTERS[fate])
    if reason:
        fates = fates.filter(reason=reason)
    page = Paginator(fates.order_by(*FATE_SORTS[sort]), FATES_PER_PAGE).get_page(
        request.GET.get("page"))
    query = {"fate": fate, "sort": sort, **({"reason": reason} if reason else {})}
    return page, {"fate": fate, "sort": sort, "reason": reason, "reasons": reasons,
                  "query": urlencode(query), "fates": list(FATE_FILTERS),
                  "sorts": list(FATE_SORTS)}


def _actor(request) -> Actor:
    return Actor.for_user(request.user, role=Role.STEWARD, ip=request.META.get("REMOTE_ADDR"))


@steward_only
def dataset_list(request):
    datasets = (Dataset.objects.select_related("purpose", "owner")
                .annotate(version_count=Count("versions", distinct=True),
                          notice_count=Count("versions__notices", distinct=True)))
    return render(request, "datasets/list.html", {"datasets": datasets})


@steward_only
def dataset_new(request):
    form = DatasetForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            dataset = dataset_create(owner=request.user, actor=_actor(request),
                                     **form.service_arguments())
        except ValidationError as exc:
            for field, errors in exc.message_dict.items():
                form.add_error(field if field in form.fields else None, errors)
        else:
            messages.success(request, f"Dataset {dataset.name!r} created. Preview the "
                                      "decision before you run an export.")
            return redirect("dataset", dataset_id=dataset.pk)
    return render(request, "datasets/new.html", {"form": form})


@steward_only
def dataset_detail(request, dataset_id: int):
    dataset = get_object_or_404(Dataset.objects.select_related("purpose", "owner"),
                                pk=dataset_id)
    versions = dataset.versions.annotate(
        notice_count=Count("notices", distinct=True),
        included=Count("studies", filter=Q(studies__included=True), distinct=True))
    notices = (WithdrawalNotice.objects.filter(version__dataset=dataset)
               .select_related("version").prefetch_related("studies__version_study"))
    return render(request, "datasets/detail.html", {
        "dataset": dataset, "versions": versions, "notices": notices,
        "approval": approval_state(dataset),
        "destination": selectors.dataset_destination(dataset.pk),
        "destination_names": destination_names()})


@steward_only
@require_POST
def dataset_destination(request, dataset_id: int):
    """Set or clear where the dataset's next versions are sent (the dataset page's form)."""
    dataset = get_object_or_404(Dataset.objects.select_related("purpose"), pk=dataset_id)
    form = DestinationForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("Nothing was changed: %(why)s") % {
            "why": "; ".join(form.errors["destination"])})
        return redirect("dataset", dataset_id=dataset.pk)
    try:
        row = dataset_destination_set(dataset=dataset, name=form.cleaned_data["destination"],
                                      actor=_actor(request))
    except ValidationError as exc:
        messages.error(request, _("Nothing was changed: %(why)s") % {
            "why": "; ".join(exc.messages)})
        return redirect("dataset", dataset_id=dataset.pk)
    if row is None:
        messages.success(request, _("No destination: versions from now on are only made as a "
                                    "zip."))
    else:
        messages.success(request, _("Versions from now on are sent to %(name)s.")
                         % {"name": row.name})
    return redirect("dataset", dataset_id=dataset.pk)


@steward_only
def dataset_preview(request, dataset_id: int):
    dataset = get_object_or_404(Dataset.objects.select_related("purpose"), pk=dataset_id)
    return render(request, "datasets/preview.html", {
        "dataset": dataset, "preview": export_preview(dataset),
        "approval": approval_state(dataset)})


@steward_only
@require_POST
def dataset_run(request, dataset_id: int):
    dataset = get_object_or_404(Dataset, pk=dataset_id)
    # An export of nothing would be recorded and delivered as if it were a dataset.
    if not selected_studies(dataset.selection).exists():
        messages.error(request, "Not run: this dataset selects no studies, so there is "
                                "nothing to export.")
        return redirect("dataset", dataset_id=dataset.pk)
    try:
        version = export_request(dataset=dataset, actor=_actor(request))
    except ValidationError as exc:
        messages.error(request, "Not run: " + "; ".join(exc.messages))
        return redirect("dataset", dataset_id=dataset.pk)
    return redirect("dataset-version", version_id=version.pk)


privacy_officers = role_required(Role.PRIVACY_OFFICER)


@privacy_officers
def approvals(request):
    """Log-only datasets whose legal basis waits for a second person, and past decisions."""
    log_only = (Dataset.objects.filter(enforcement=Enforcement.LOG_ONLY)
                .select_related("purpose", "owner", "approval"))
    return render(request, "datasets/approvals.html", {
        "waiting": log_only.filter(approval__isnull=True).order_by("created_at"),
        "decided": log_only.filter(approval__isnull=False).order_by("-approval__decided_at")[:50],
    })


@privacy_officers
@require_POST
def dataset_decide(request, dataset_id: int):
    dataset = get_object_or_404(Dataset, pk=dataset_id, enforcement=Enforcement.LOG_ONLY)
    try:
        made = legal_basis_decide(
            dataset=dataset, user=request.user, decision=request.POST.get("decision", ""),
            note=request.POST.get("note", "")[:2000],
            actor=Actor.for_user(request.user, role=Role.PRIVACY_OFFICER,
                                 ip=request.META.get("REMOTE_ADDR")))
    except ValidationError as exc:
        messages.error(request, f"{dataset.name}: nothing was decided: "
                                + "; ".join(exc.messages))
    else:
        messages.success(request, f"{dataset.name}: legal basis {made.decision}.")
    return redirect("dataset-approvals")


@steward_only
def version_detail(request, version_id: int):
    version = get_object_or_404(DatasetVersion.objects.select_related("dataset__purpose"),
                                pk=version_id)
    fates, listing = _fates_listing(request, version)
    deliveries = list(selectors.version_deliveries(version))
    if version.status in (VersionStatus.COMPLETE, VersionStatus.FAILED):
        with transaction.atomic():
            # The list names the hospital's studies (accession numbers): a use of PHI.
            ledger.record(action="phi.viewed", event_code=codes.QUERY, actor=_actor(request),
                          dataset_ref=version.dataset_id,
                          details={"what": "export version studies",
                                   "version": version.number})
    return render(request, "datasets/version.html", {
        "version": version, "dataset": version.dataset, "fates": fates,
        "fates_total": version.studies_done, "listing": listing,
        "excluded": selectors.excluded_by_reason(version).items(),
        "notices": version.notices.prefetch_related("studies__version_study"),
        "deliveries": deliveries, "retry": selectors.delivery_retry(version),
        "retry_max": MAX_ATTEMPTS,
        "failing": any(d.status == DeliveryStatus.FAILED for d in deliveries),
        "destination": selectors.dataset_destination(version.dataset_id)})


@steward_only
def version_progress(request, version_id: int):
    version = get_object_or_404(DatasetVersion, pk=version_id)
    return JsonResponse(selectors.version_progress(version))


@steward_only
def version_zip(request, version_id: int):
    version = get_object_or_404(DatasetVersion, pk=version_id)
    try:
        path = version_download(version, _actor(request))
    except NotDownloadable as exc:
        messages.error(request, str(exc))
        return redirect("dataset-version", version_id=version.pk)
    return FileResponse(open(path, "rb"), as_attachment=True,
                        filename=f"{zip_name(version)}.zip",
                        content_type="application/zip")


def export_public_key(request):
    """The hospital's export public keys, for recipients to pin. Public: a key is not a
    secret, and a recipient has no account here."""
    return render(request, "datasets/public_key.html", {
        "keys": [(kid, public_pem(public)) for kid, public in published_keys().items()]})


@steward_only
@require_POST
def withdrawal_confirm_view(request, notice_id: int):
    notice = get_object_or_404(WithdrawalNotice.objects.select_related("version"), pk=notice_id)
    try:
        withdrawal_confirm(notice=notice, confirmed_by=request.POST.get("confirmed_by", ""),
                           how=request.POST.get("how", ""), actor=_actor(request))
    except ValidationError as exc:
        messages.error(request, "Nothing was recorded: " + "; ".join(exc.messages))
    else:
        messages.success(request, "The recipient's confirmation of deletion is recorded.")
    return redirect("dataset", dataset_id=notice.version.dataset_id)
