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
from audit import ledger
from registry import events, selectors
from registry.dicom import UID_PATTERN
from registry.models import Patient
from registry.registration import Status
from registry.uploads import register_uploads


def log_search(request, what: str, criteria: dict) -> None:
    """A search of the registry is a use of patients' data: the ledger names who searched
    for what (the token too, for systems)."""
    ledger.record_drafts([events.phi_searched(
        actor=request_actor(request), what=what, criteria=criteria, via="api",
        page=request.query_params.get("page", "1"))])


# Terms that identify a patient travel in request bodies, never in URLs, which web servers,
# proxies and browsers write to their logs.
IDENTIFYING_IN_URL = ("q", "mrn", "issuer", "accession", "study_instance_uid")


def refuse_identifying_query(request, search_path: str) -> None:
    named = [name for name in IDENTIFYING_IN_URL if name in request.query_params]
    if named:
        raise ValidationError({named[0]: [
            f"Search by {', '.join(named)} with POST {search_path} and the terms in the "
            "JSON body: identifying terms never go in a URL."]})


class PatientOut(serializers.ModelSerializer):
    class Meta:
        model = Patient
        fields = ["id", "issuer", "mrn", "name", "birth_date", "sex"]


class PatientFilters(serializers.Serializer):
    # CharField refuses NUL characters, which PostgreSQL cannot compare.
    q = serializers.CharField(max_length=200, required=False, allow_blank=True)
    mrn = serializers.CharField(max_length=64, required=False, allow_blank=True)
    issuer = serializers.CharField(max_length=64, required=False, allow_blank=True)

    def validate(self, attrs):
        if not any(str(attrs.get(name, "")).strip() for name in ("q", "mrn", "issuer")):
            raise ValidationError({"q": ["Give a search term (q: MRN, name, accession "
                                         "number or StudyInstanceUID), an mrn or an issuer. "
                                         "To list every patient, GET /api/v1/patients."]})
        return attrs


class PatientListApi(generics.ListAPIView):
    """Every patient, a page at a time (logged). To find one, POST patients/search."""

    permission_classes = [ReadsPatientData]
    serializer_class = PatientOut

    def get_queryset(self):
        refuse_identifying_query(self.request, "/api/v1/patients/search")
        log_search(self.request, "patients", {})
        return selectors.patient_search()


class PatientSearchApi(generics.GenericAPIView):
    """Find patients by MRN (whole, or its first 4 characters or more), name (every word,
    any order), accession or StudyInstanceUID (q), or by whole MRN (mrn), given in the body.
    Case does not matter. Pages: ?page=N."""

    permission_classes = [ReadsPatientData]
    serializer_class = PatientOut

    @extend_schema(request=PatientFilters, responses={200: PatientOut(many=True)})
    def post(self, request):
        filters = PatientFilters(data=request.data)
        filters.is_valid(raise_exception=True)
        data = filters.validated_data
        log_search(request, "patients", data)
        try:
            found = selectors.patient_search(query=data.get("q", ""), mrn=data.get("mrn", ""),
                                             issuer=data.get("issuer", ""))
        except selectors.SearchTermError as exc:
            raise ValidationError({"q": [str(exc)]}) from None
        page = self.paginate_queryset(found)
        return self.get_paginated_response(self.get_serializer(page, many=True).data)


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


class StudyListFilters(serializers.Serializer):
    date_from = serializers.DateField(required=False)
    date_to = serializers.DateField(required=False)
    modality = serializers.RegexField(r"^[A-Za-z]{1,16}$", required=False)


class StudyFilters(StudyListFilters):
    mrn = serializers.CharField(max_length=64, required=False, allow_blank=True)
    issuer = serializers.CharField(max_length=64, required=False, allow_blank=True)
    accession = serializers.CharField(max_length=64, required=False, allow_blank=True)
    study_instance_uid = serializers.CharField(max_length=64, required=False,
                                               allow_blank=True)


def _studies(data: dict):
    try:
        return _study_search(data)
    except selectors.SearchTermError as exc:
        raise ValidationError({"mrn": [str(exc)]}) from None


def _study_search(data: dict):
    return selectors.study_search(
        mrn=data.get("mrn", ""), issuer=data.get("issuer", ""),
        accession=data.get("accession", ""), study_uid=data.get("study_instance_uid", ""),
        date_from=data.get("date_from"), date_to=data.get("date_to"),
        modality=data.get("modality", ""))


class StudyListApi(generics.ListAPIView):
    """Studies by date range and modality (logged). To find a patient's or one study,
    POST studies/search."""

    permission_classes = [ReadsPatientData]
    serializer_class = StudyOut

    @extend_schema(parameters=[StudyListFilters])
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        refuse_identifying_query(self.request, "/api/v1/studies/search")
        filters = StudyListFilters(data=self.request.query_params)
        filters.is_valid(raise_exception=True)
        log_search(self.request, "studies", filters.validated_data)
        return _studies(filters.validated_data)


class StudySearchApi(generics.GenericAPIView):
    """Find studies by MRN, accession, StudyInstanceUID, dates or modality, given in the
    body. Pages: ?page=N."""

    permission_classes = [ReadsPatientData]
    serializer_class = StudyOut

    @extend_schema(request=StudyFilters, responses={200: StudyOut(many=True)})
    def post(self, request):
        filters = StudyFilters(data=request.data)
        filters.is_valid(raise_exception=True)
        log_search(request, "studies", filters.validated_data)
        page = self.paginate_queryset(_studies(filters.validated_data))
        return self.get_paginated_response(self.get_serializer(page, many=True).data)


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
