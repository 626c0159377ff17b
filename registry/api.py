"""REST API of the registry: find patients and studies, upload DICOM files. One class per
operation, each with its own small serializers."""

from drf_spectacular.utils import extend_schema
from rest_framework import generics, serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from access.api_auth import ReadsPatientData, request_actor, scoped
from access.models import TokenScope
from access.roles import Role
from audit import codes, ledger
from registry import selectors
from registry.dicom import UID_PATTERN
from registry.models import Patient
from registry.registration import Status
from registry.uploads import register_uploads


def log_search(request, what: str, criteria: dict) -> None:
    """A search of the registry is a use of patients' data: the ledger names who searched
    for what (the token too, for systems)."""
    ledger.record(action="phi.searched", event_code=codes.QUERY, actor=request_actor(request),
                  details={"what": what, "criteria": {k: str(v) for k, v in criteria.items()},
                           "page": request.query_params.get("page", "1")[:10]})


class PatientOut(serializers.ModelSerializer):
    class Meta:
        model = Patient
        fields = ["id", "issuer", "mrn", "name", "birth_date", "sex"]


class PatientFilters(serializers.Serializer):
    # CharField refuses NUL characters, which PostgreSQL cannot compare.
    q = serializers.CharField(max_length=200, required=False, allow_blank=True)
    mrn = serializers.CharField(max_length=64, required=False, allow_blank=True)
    issuer = serializers.CharField(max_length=64, required=False, allow_blank=True)


class PatientListApi(generics.ListAPIView):
    """Find patients by MRN (exact), name (contains), accession or StudyInstanceUID (q)."""

    permission_classes = [ReadsPatientData]
    serializer_class = PatientOut

    @extend_schema(parameters=[PatientFilters])
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        filters = PatientFilters(data=self.request.query_params)
        filters.is_valid(raise_exception=True)
        data = filters.validated_data
        log_search(self.request, "patients", data)
        return selectors.patient_search(query=data.get("q", ""), mrn=data.get("mrn", ""),
                                        issuer=data.get("issuer", ""))


class StudyOut(serializers.Serializer):
    id = serializers.IntegerField()
    study_instance_uid = serializers.CharField(source="study_uid")
    patient_id = serializers.IntegerField()
    patient_mrn = serializers.CharField(source="patient.mrn")
    accession_number = serializers.CharField()
    study_date = serializers.DateField(allow_null=True)
    description = serializers.CharField()
    modalities = serializers.SerializerMethodField()
    body_parts = serializers.SerializerMethodField()
    series_count = serializers.IntegerField()
    instance_count = serializers.IntegerField()

    def get_modalities(self, study) -> list[str]:
        return [m for m in study.modalities.split("\\") if m]

    def get_body_parts(self, study) -> list[str]:
        return [b for b in study.body_parts.split("\\") if b]


class StudyFilters(serializers.Serializer):
    mrn = serializers.CharField(max_length=64, required=False, allow_blank=True)
    issuer = serializers.CharField(max_length=64, required=False, allow_blank=True)
    accession = serializers.CharField(max_length=64, required=False, allow_blank=True)
    study_instance_uid = serializers.CharField(max_length=64, required=False,
                                               allow_blank=True)
    date_from = serializers.DateField(required=False)
    date_to = serializers.DateField(required=False)
    modality = serializers.RegexField(r"^[A-Za-z]{1,16}$", required=False)


class StudyListApi(generics.ListAPIView):
    permission_classes = [ReadsPatientData]
    serializer_class = StudyOut

    @extend_schema(parameters=[StudyFilters])
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        filters = StudyFilters(data=self.request.query_params)
        filters.is_valid(raise_exception=True)
        data = filters.validated_data
        log_search(self.request, "studies", data)
        return selectors.study_search(
            mrn=data.get("mrn", ""), issuer=data.get("issuer", ""),
            accession=data.get("accession", ""),
            study_uid=data.get("study_instance_uid", ""), date_from=data.get("date_from"),
            date_to=data.get("date_to"), modality=data.get("modality", ""))


class StudyIngestApi(APIView):
    """Upload DICOM files (multipart, field ``files``); each gets its own answer."""

    parser_classes = [MultiPartParser]
    permission_classes = [scoped(TokenScope.INGEST, Role.STAFF, Role.STEWARD)]

    class IngestInputSerializer(serializers.Serializer):
        files = serializers.ListField(child=serializers.FileField(allow_empty_file=True),
                                      allow_empty=False)

    class IngestOutcomeSerializer(serializers.Serializer):
        file = serializers.CharField()
        status = serializers.ChoiceField(
            choices=[Status.REGISTERED, Status.KNOWN, Status.CONFLICT, Status.REJECTED])
        reason = serializers.CharField(allow_blank=True)
        study_instance_uid = serializers.CharField(allow_blank=True)
        sop_instance_uid = serializers.CharField(allow_blank=True)

    class IngestOutputSerializer(serializers.Serializer):
        registered = serializers.IntegerField()
        known = serializers.IntegerField()
        conflict = serializers.IntegerField()
        rejected = serializers.IntegerField()
        files = serializers.ListField(child=serializers.DictField())

    @extend_schema(request={"multipart/form-data": IngestInputSerializer},
                   responses={200: IngestOutputSerializer})
    def post(self, request):
        uploads = request.FILES.getlist("files")
        if not uploads:
            raise ValidationError({"files": ["Upload at least one DICOM file in 'files'."]})
        names = [upload.name for upload in uploads]
        outcomes = register_uploads(uploads, actor=request_actor(request))
        results = [
            {"file": name, "status": o.status, "reason": o.reason,
             "study_instance_uid": o.study_uid, "sop_instance_uid": o.sop_uid}
            for name, o in zip(names, outcomes, strict=True)
        ]
        counts = {s: sum(1 for o in outcomes if o.status == s)
                  for s in (Status.REGISTERED, Status.KNOWN, Status.CONFLICT, Status.REJECTED)}
        code = status.HTTP_201_CREATED if counts[Status.REGISTERED] else status.HTTP_200_OK
        return Response({**counts, "files": results}, status=code)


class UidField(serializers.RegexField):
    """A DICOM UID given as a JSON string: numbers are refused, not converted."""

    def __init__(self, **kwargs):
        super().__init__(UID_PATTERN, max_length=64, error_messages={
            "invalid": "Not a DICOM UID (digits and dots, at most 64 characters)."}, **kwargs)

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)
