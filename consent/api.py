"""REST API of the consent app: one class per operation, small serializers of its own."""

import os
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path

from django.conf import settings
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import APIException, ValidationError
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from audit.ledger import Actor
from consent.api_access import request_actor, scoped
from consent.checks import MAX_STUDIES, consent_check
from consent.dicom import UID_PATTERN, DicomHeader
from consent.engine import ConsentUnavailable
from consent.models import Instance, Patient, TokenScope
from consent.registration import FileOutcome, Status, dicom_register, read_or_reject
from consent.roles import Role


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


def register_uploads(uploads, *, actor: Actor) -> list[FileOutcome]:
    """Store each readable upload under its sha256 in the data directory, then register.

    Files are written before the database transaction and removed again when they end up
    not registered, so a failed request leaves neither rows nor stray files behind."""
    incoming = settings.DATA_DIR / "incoming"
    incoming.mkdir(parents=True, exist_ok=True)
    read: list[DicomHeader | FileOutcome] = []
    for upload in uploads:
        with tempfile.NamedTemporaryFile(dir=incoming, delete=False, suffix=".dcm") as tmp:
            for chunk in upload.chunks():
                tmp.write(chunk)
        header = read_or_reject(tmp.name)
        if isinstance(header, FileOutcome):
            os.unlink(tmp.name)
            header = replace(header, path=upload.name)
        else:
            header = replace(header, path=str(_store(Path(tmp.name), header.sha256)))
        read.append(header)
    headers = [h for h in read if isinstance(h, DicomHeader)]
    stored = {h.path for h in headers}
    kept: set[str] = set()
    try:
        registered = iter(dicom_register(headers=headers, actor=actor, source="api")
                          if headers else [])
        outcomes = [h if isinstance(h, FileOutcome) else next(registered) for h in read]
        kept = set(Instance.objects.filter(path__in=stored).values_list("path", flat=True))
    finally:
        # Files no instance points at: rejected, conflicting, or the transaction failed.
        for path in stored - kept:
            Path(path).unlink(missing_ok=True)
    return outcomes


def _store(temporary: Path, sha256: str) -> Path:
    target = settings.DICOM_STORE_DIR / sha256[:2] / f"{sha256}.dcm"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(temporary, target)
    return target


class UidField(serializers.RegexField):
    """A DICOM UID given as a JSON string: numbers are refused, not converted."""

    def __init__(self, **kwargs):
        super().__init__(UID_PATTERN, max_length=64, error_messages={
            "invalid": "Not a DICOM UID (digits and dots, at most 64 characters)."}, **kwargs)

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class ConsentCheckApi(APIView):
    """May these studies be used for this purpose? One answer per study, with its reason and
    the deciding consent records; unknown StudyInstanceUIDs are listed, never dropped."""

    permission_classes = [scoped(TokenScope.CONSENT_READ, Role.STAFF, Role.STEWARD)]

    class CheckInputSerializer(serializers.Serializer):
        purpose = serializers.SlugField(max_length=64)
        study_instance_uids = serializers.ListField(
            child=UidField(), required=False, allow_empty=False, max_length=MAX_STUDIES)
        patient_mrn = serializers.CharField(max_length=64, required=False)
        patient_issuer = serializers.CharField(max_length=64, required=False)
        at = serializers.DateTimeField(required=False)

        def validate(self, data):
            if bool(data.get("study_instance_uids")) == bool(data.get("patient_mrn")):
                raise serializers.ValidationError(
                    {"study_instance_uids": "Give either study_instance_uids or patient_mrn."})
            return data

    class CheckAnswerSerializer(serializers.Serializer):
        study_instance_uid = serializers.CharField()
        allowed = serializers.BooleanField()
        decision = serializers.ChoiceField(choices=["permit", "deny"])
        reason = serializers.CharField()
        deciding_record_ids = serializers.ListField(child=serializers.IntegerField())
        by_default_policy = serializers.BooleanField()

    class CheckOutputSerializer(serializers.Serializer):
        purpose = serializers.CharField()
        at = serializers.DateTimeField()
        results = serializers.ListField(child=serializers.DictField())
        unknown = serializers.ListField(child=serializers.CharField())

    @extend_schema(request=CheckInputSerializer, responses={200: CheckOutputSerializer})
    def post(self, request):
        serializer = self.CheckInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        patient = None
        if data.get("patient_mrn"):
            patient = Patient.objects.filter(
                mrn=data["patient_mrn"],
                issuer=data.get("patient_issuer") or settings.CONSENTRY_DEFAULT_MRN_ISSUER,
            ).first()
            if patient is None:
                raise ValidationError({"patient_mrn": ["No patient with this MRN."]})
        try:
            result = consent_check(
                purpose_code=data["purpose"], at=data.get("at") or timezone.now(),
                actor=request_actor(request), study_uids=data.get("study_instance_uids"),
                patient=patient)
        except LookupError:
            raise ValidationError({"purpose": ["Unknown purpose."]}) from None
        except ConsentUnavailable:
            raise ServiceUnavailable() from None
        return Response({
            "purpose": result.purpose_code, "at": result.at,
            "results": [{
                "study_instance_uid": a.study_uid, "allowed": a.decision.allowed,
                "decision": a.decision.decision, "reason": a.decision.reason,
                "deciding_record_ids": list(a.decision.record_ids),
                "by_default_policy": a.decision.by_default_policy,
            } for a in result.answers],
            "unknown": result.unknown,
        })


class ServiceUnavailable(APIException):
    status_code = 503
    default_detail = "Consent could not be read; treat every study as not allowed."
