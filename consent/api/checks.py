"""The consent-check API: may these studies be used for this purpose?"""

from django.conf import settings
from django.utils import timezone
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import APIException, ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from access.api_auth import request_actor, scoped
from access.models import TokenScope
from access.roles import Role
from consent.checks import MAX_STUDIES, consent_check
from consent.engine import ConsentUnavailable
from consent.models import Decision
from registry.api import UidField
from registry.identifiers import mrn_digest
from registry.models import Patient


class CheckAnswerSerializer(serializers.Serializer):
    study_instance_uid = serializers.CharField(help_text="The study asked about.")
    allowed = serializers.BooleanField(help_text="May the study be used for the purpose?")
    # The same choices as a consent record's decision, so the schema has one enum for both.
    decision = serializers.ChoiceField(choices=Decision.choices)
    reason = serializers.CharField(help_text="Why, in words, naming the deciding records.")
    deciding_record_ids = serializers.ListField(
        child=serializers.IntegerField(),
        help_text="The consent records that decided; empty when the default policy did.")
    by_default_policy = serializers.BooleanField(
        help_text="True when no record applied and the purpose's default decided.")


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

    class CheckOutputSerializer(serializers.Serializer):
        purpose = serializers.CharField(help_text="The purpose code asked about.")
        at = serializers.DateTimeField(help_text="The moment the answers hold for.")
        results = CheckAnswerSerializer(many=True, help_text="One answer per known study.")
        unknown = serializers.ListField(
            child=serializers.CharField(),
            help_text="StudyInstanceUIDs asked about that Consentry does not know.")

    @extend_schema(
        request=CheckInputSerializer,
        responses={200: CheckOutputSerializer},
        description="Send either `study_instance_uids` (up to 10,000) or `patient_mrn` (with "
                    "`patient_issuer` when it is not the default), never both. JSON bodies "
                    "only: a form-encoded body is refused with 415.",
        examples=[
            OpenApiExample("Some studies", request_only=True, value={
                "purpose": "ai-training",
                "study_instance_uids": ["1.2.826.0.1.3680043.8.498.1", "1.2.3.4"]}),
            OpenApiExample("Every study of one patient", request_only=True, value={
                "purpose": "research", "patient_mrn": "DEMO00001"}),
            OpenApiExample("Answer", response_only=True, value={
                "purpose": "ai-training", "at": "2026-03-02T14:30:00Z",
                "results": [{"study_instance_uid": "1.2.826.0.1.3680043.8.498.1",
                             "allowed": False, "decision": "deny",
                             "reason": "Not allowed: the patient said no to training AI "
                                       "tools for scans of the head (record 3, 2026-03-01).",
                             "deciding_record_ids": [3], "by_default_policy": False}],
                "unknown": ["1.2.3.4"]}),
        ])
    def post(self, request):
        serializer = self.CheckInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        patient = None
        if data.get("patient_mrn"):
            # The exact MRN (its blind index), as registration stored it: a consent answer
            # must be about exactly this patient.
            patient = Patient.objects.filter(
                mrn_index=mrn_digest(data["patient_mrn"]),
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
