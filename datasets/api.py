"""REST API of datasets and exports, for stewards and systems holding the ``export`` scope.
One class per operation; writes go through datasets.exports."""

from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import FileResponse
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import generics, serializers, status
from rest_framework.exceptions import APIException, ValidationError
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from access.api_auth import request_actor, scoped
from access.models import TokenScope
from access.roles import Role
from consent.engine import PurposeTree
from datasets import selectors
from datasets.approvals import approval_state
from datasets.deid import Option
from datasets.delivery import dataset_destination_set, destination_names
from datasets.exports import dataset_create, export_preview, export_request
from datasets.models import (
    BurnedInText,
    Dataset,
    DatasetVersion,
    Enforcement,
    WithdrawalNotice,
)
from datasets.packaging import NotDownloadable, version_download, zip_name
from datasets.signing import public_pem, published_keys

EXPORTERS = scoped(TokenScope.EXPORT, Role.STEWARD)


class Conflict(APIException):
    status_code = 409
    default_detail = "Not possible in the resource's present state."


class WithdrawalNoticeOut(serializers.ModelSerializer):
    version = serializers.IntegerField(source="version.number")
    pseudonymous_study_uids = serializers.SerializerMethodField()

    class Meta:
        model = WithdrawalNotice
        fields = ["id", "version", "cause", "created_at", "emailed_at",
                  "pseudonymous_study_uids"]

    def get_pseudonymous_study_uids(self, notice) -> list[str]:
        return [s.version_study.pseudo_study_uid for s in notice.studies.all()]


class ExportOut(serializers.ModelSerializer):
    """A version: its progress while it runs, its outcome once it has."""

    dataset = serializers.IntegerField(source="dataset_id")
    percent = serializers.SerializerMethodField()
    excluded_by_reason = serializers.SerializerMethodField()
    withdrawal_notices = WithdrawalNoticeOut(source="notices", many=True, read_only=True)

    class Meta:
        model = DatasetVersion
        fields = ["id", "dataset", "number", "status", "requested_by", "created_at",
                  "decided_at", "finished_at", "studies_total", "studies_done",
                  "files_written", "bytes_written", "percent", "manifest_sha256", "error",
                  "excluded_by_reason", "withdrawal_notices"]

    def get_percent(self, version) -> int:
        return selectors.version_progress(version)["percent"]

    def get_excluded_by_reason(self, version) -> dict[str, int]:
        return selectors.excluded_by_reason(version)


class DatasetOut(serializers.ModelSerializer):
    purpose = serializers.SlugRelatedField(slug_field="code", read_only=True)
    owner = serializers.CharField(source="owner.get_username")
    legal_basis = serializers.CharField()
    approval = serializers.SerializerMethodField(
        help_text="log-only datasets: 'awaiting approval', 'approved' or 'refused' by a "
                  "privacy officer; others: 'not needed'")

    class Meta:
        model = Dataset
        fields = ["id", "name", "purpose", "owner", "recipient", "description",
                  "enforcement", "irb_waiver", "approving_body", "approver", "legal_basis",
                  "approval", "selection", "deid_options", "defaced_upstream",
                  "burned_in_text", "created_at"]

    def get_approval(self, dataset) -> str:
        return approval_state(dataset)


class DatasetDetailOut(DatasetOut):
    versions = ExportOut(many=True, read_only=True)

    class Meta(DatasetOut.Meta):
        fields = [*DatasetOut.Meta.fields, "versions"]


class DatasetCreateIn(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    purpose = serializers.SlugField(max_length=64)
    recipient = serializers.CharField(max_length=200)
    description = serializers.CharField(max_length=5000, required=False, default="",
                                        allow_blank=True)
    enforcement = serializers.ChoiceField(choices=Enforcement.choices,
                                          default=Enforcement.EXCLUDE)
    irb_waiver = serializers.CharField(max_length=100, required=False, default="",
                                       allow_blank=True)
    approving_body = serializers.CharField(max_length=200, required=False, default="",
                                           allow_blank=True)
    approver = serializers.CharField(max_length=200, required=False, default="",
                                     allow_blank=True)
    selection = serializers.JSONField(
        help_text='{"study_uids": [...]} or a query: {"modality": "CT", "body_part": '
                  '"CHEST", "date_from": "2024-01-01", "date_to": ..., "min_age": 18, '
                  '"max_age": ...}')
    deid_options = serializers.ListField(
        child=serializers.ChoiceField(choices=Option.ALL), required=False,
        default=[Option.MODIFIED_DATES, Option.PATIENT_CHARACTERISTICS])
    defaced_upstream = serializers.BooleanField(default=False)
    burned_in_text = serializers.ChoiceField(choices=BurnedInText.choices,
                                             default=BurnedInText.EXCLUDE)


class PreviewOut(serializers.Serializer):
    selected = serializers.IntegerField()
    included = serializers.IntegerField()
    excluded = serializers.DictField(child=serializers.IntegerField())
    pixel_checks = serializers.IntegerField(
        help_text="included studies whose pixels the run reads for burned-in text first")


class DatasetListApi(generics.ListCreateAPIView):
    """Datasets, newest first; create one (you become its owner)."""

    permission_classes = [EXPORTERS]
    serializer_class = DatasetOut
    queryset = Dataset.objects.select_related("purpose", "owner").order_by("-created_at", "-pk")

    @extend_schema(request=DatasetCreateIn, responses={201: DatasetOut})
    def post(self, request, *args, **kwargs):
        given = DatasetCreateIn(data=request.data)
        given.is_valid(raise_exception=True)
        data = dict(given.validated_data)
        try:
            purpose = PurposeTree.load().get(data.pop("purpose"))
        except LookupError:
            raise ValidationError({"purpose": ["Unknown purpose."]}) from None
        try:
            dataset = dataset_create(purpose=purpose, owner=request.user,
                                     actor=request_actor(request), **data)
        except DjangoValidationError as exc:
            raise ValidationError(exc.message_dict) from None
        return Response(DatasetOut(dataset).data, status=status.HTTP_201_CREATED)


class DatasetDetailApi(generics.RetrieveAPIView):
    """A dataset with its versions and their withdrawal notices."""

    permission_classes = [EXPORTERS]
    serializer_class = DatasetDetailOut
    lookup_url_kwarg = "dataset_id"
    queryset = Dataset.objects.select_related("purpose", "owner").prefetch_related(
        "versions__notices__studies__version_study")


class DatasetPreviewApi(APIView):
    """How many selected studies an export would include now, and why the rest are out."""

    permission_classes = [EXPORTERS]

    @extend_schema(responses={200: PreviewOut})
    def get(self, request, dataset_id: int):
        dataset = get_object_or_404(Dataset.objects.select_related("purpose"), pk=dataset_id)
        return Response(PreviewOut(export_preview(dataset)).data)


class ExportCreateApi(APIView):
    """Run an export: a new numbered version, queued for a worker. Poll exports/{id}."""

    permission_classes = [EXPORTERS]

    @extend_schema(request=None, responses={202: ExportOut})
    def post(self, request, dataset_id: int):
        dataset = get_object_or_404(Dataset, pk=dataset_id)
        try:
            version = export_request(dataset=dataset, actor=request_actor(request))
        except DjangoValidationError as exc:
            raise Conflict("; ".join(exc.messages)) from None
        version.refresh_from_db()  # inline Celery may have run it already
        return Response(ExportOut(version).data, status=status.HTTP_202_ACCEPTED)


class ExportDetailApi(generics.RetrieveAPIView):
    """A version's progress (studies done / total, files, bytes) and outcome."""

    permission_classes = [EXPORTERS]
    serializer_class = ExportOut
    lookup_url_kwarg = "export_id"
    queryset = DatasetVersion.objects.prefetch_related("notices__studies__version_study")


class ExportDownloadApi(APIView):
    """The complete version as a zip: files, manifest.json, manifest.csv, signature."""

    permission_classes = [EXPORTERS]

    @extend_schema(responses={
        (200, "application/zip"): OpenApiResponse(OpenApiTypes.BINARY,
                                                  description="The version's zip")})
    def get(self, request, export_id: int):
        version = get_object_or_404(DatasetVersion, pk=export_id)
        try:
            path = version_download(version, request_actor(request))
        except NotDownloadable as exc:
            raise Conflict(str(exc)) from None
        return FileResponse(open(path, "rb"), as_attachment=True,
                            filename=f"{zip_name(version)}.zip",
                            content_type="application/zip")


class DestinationOut(serializers.Serializer):
    destination = serializers.CharField(
        allow_null=True, help_text="The name (from CONSENTRY_DESTINATIONS) the dataset's next "
                                   "versions are sent to; null: only a zip is made")
    set_by = serializers.CharField(allow_null=True)
    set_at = serializers.DateTimeField(allow_null=True)
    configured = serializers.ListField(
        child=serializers.CharField(),
        help_text="The destinations configured on this server, to choose from")


class DestinationIn(serializers.Serializer):
    destination = serializers.CharField(
        max_length=64, allow_null=True, allow_blank=True,
        help_text="A name from 'configured'; null or '' stops sending")


def _destination_out(dataset: Dataset) -> dict:
    row = selectors.dataset_destination(dataset.pk)
    return {"destination": row.name if row else None, "set_by": row.set_by if row else None,
            "set_at": row.set_at if row else None, "configured": destination_names()}


class DatasetDestinationApi(APIView):
    """Where the dataset's next versions are sent besides the zip: a DICOM node or a
    DICOMweb STOW-RS endpoint, by its name in CONSENTRY_DESTINATIONS. Set it (PUT) or
    clear it (PUT null, or DELETE); each change is a ledger event."""

    permission_classes = [EXPORTERS]

    def _dataset(self, dataset_id: int) -> Dataset:
        return get_object_or_404(Dataset.objects.select_related("purpose"), pk=dataset_id)

    def _set(self, request, dataset: Dataset, name: str) -> Response:
        try:
            dataset_destination_set(dataset=dataset, name=name, actor=request_actor(request))
        except DjangoValidationError as exc:
            raise ValidationError(exc.message_dict) from None
        return Response(DestinationOut(_destination_out(dataset)).data)

    @extend_schema(responses={200: DestinationOut})
    def get(self, request, dataset_id: int):
        dataset = self._dataset(dataset_id)
        return Response(DestinationOut(_destination_out(dataset)).data)

    @extend_schema(request=DestinationIn, responses={200: DestinationOut})
    def put(self, request, dataset_id: int):
        dataset = self._dataset(dataset_id)
        given = DestinationIn(data=request.data)
        given.is_valid(raise_exception=True)
        return self._set(request, dataset, given.validated_data["destination"] or "")

    @extend_schema(request=None, responses={200: DestinationOut})
    def delete(self, request, dataset_id: int):
        return self._set(request, self._dataset(dataset_id), "")


class ExportKeysOut(serializers.Serializer):
    key_id = serializers.CharField()
    algorithm = serializers.CharField()
    public_key_pem = serializers.CharField()
    current = serializers.BooleanField()


class ExportKeysApi(APIView):
    """The hospital's export public keys, for recipients to pin (public: no credentials)."""

    authentication_classes = []
    permission_classes = [AllowAny]

    @extend_schema(responses={200: inline_serializer(
        "ExportKeys", {"keys": ExportKeysOut(many=True)})})
    def get(self, request):
        keys = [{"key_id": kid, "algorithm": "Ed25519", "public_key_pem": public_pem(public),
                 "current": n == 0} for n, (kid, public) in enumerate(published_keys().items())]
        return Response({"keys": keys})
