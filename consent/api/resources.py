"""Read and write resources of the consent API: purposes and consent records.
One class per operation, each with its own small serializers; writes go through services."""

from django.core.exceptions import ValidationError as DjangoValidationError
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import generics, serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from access.api_auth import ReadsPatientData, request_actor, scoped
from access.models import TokenScope
from access.roles import Role
from audit import codes, ledger
from consent import selectors
from consent.engine import PurposeTree
from consent.models import ConsentRecord, Decision, Purpose, ScopeKind, Source
from consent.services import consent_record, consent_withdraw
from registry.models import Patient

# How staff and systems may say a consent reached them (the portal is the patient's own).
STAFF_SOURCES = [(s.value, s.label) for s in (Source.PAPER, Source.VERBAL, Source.API,
                                               Source.STAFF)]


class PurposeOut(serializers.ModelSerializer):
    parent = serializers.SlugRelatedField(slug_field="code", read_only=True, allow_null=True)

    class Meta:
        model = Purpose
        fields = ["code", "name", "description", "parent", "default_policy", "duo_id"]


class PurposeListApi(generics.ListAPIView):
    """Purposes are not personal data: anyone signed in or holding a token may read them."""

    permission_classes = [IsAuthenticated]
    serializer_class = PurposeOut
    queryset = Purpose.objects.select_related("parent").order_by("position", "code")


class ConsentOut(serializers.ModelSerializer):
    purpose = serializers.SlugRelatedField(slug_field="code", read_only=True)
    form_version = serializers.IntegerField(source="form.version")

    class Meta:
        model = ConsentRecord
        fields = ["id", "patient", "purpose", "decision", "scope_kind", "scope_value",
                  "effective_from", "expires_at", "recorded_at", "source", "recorded_by_label",
                  "proxy_name", "proxy_relationship", "witness", "form_version",
                  "text_sha256"]


class PatientConsentListApi(generics.ListAPIView):
    """A patient's consent records, newest first. Reading them is logged (phi.viewed)."""

    permission_classes = [ReadsPatientData]
    serializer_class = ConsentOut

    def get_queryset(self):
        patient = get_object_or_404(Patient, pk=self.kwargs["patient_id"])
        ledger.record(action="phi.viewed", event_code=codes.PATIENT_RECORD,
                      actor=request_actor(self.request), patient_ref=patient.pk,
                      details={"what": "consent records", "via": "api"})
        return selectors.patient_history(patient)


def _patient_and_purpose(data: dict) -> tuple[Patient, Purpose]:
    """Take the validated ids out of ``data``; a missing one is a 400 naming its field."""
    patient = Patient.objects.filter(pk=data.pop("patient")).first()
    if patient is None:
        raise ValidationError({"patient": ["No such patient."]})
    try:
        return patient, PurposeTree.load().get(data.pop("purpose"))
    except LookupError:
        raise ValidationError({"purpose": ["Unknown purpose."]}) from None


class ConsentCreateApi(APIView):
    """Record a consent given on paper, verbally, or by another system."""

    permission_classes = [scoped(TokenScope.CONSENT_WRITE, Role.STAFF)]

    class ConsentCreateInputSerializer(serializers.Serializer):
        patient = serializers.IntegerField(min_value=1)
        purpose = serializers.SlugField(max_length=64)
        decision = serializers.ChoiceField(choices=Decision.choices)
        scope_kind = serializers.ChoiceField(choices=ScopeKind.choices, default=ScopeKind.ALL)
        scope_value = serializers.CharField(max_length=64, required=False, default="",
                                            allow_blank=True)
        effective_from = serializers.DateTimeField(required=False)
        expires_at = serializers.DateTimeField(required=False, allow_null=True)
        source = serializers.ChoiceField(choices=STAFF_SOURCES, default=Source.API)
        proxy_name = serializers.CharField(max_length=200, required=False, default="",
                                           allow_blank=True)
        proxy_relationship = serializers.CharField(max_length=64, required=False, default="",
                                                   allow_blank=True)
        witness = serializers.CharField(max_length=200, required=False, default="",
                                        allow_blank=True)
        form_version = serializers.IntegerField(required=False, min_value=1)

    @extend_schema(request=ConsentCreateInputSerializer, responses={201: ConsentOut})
    def post(self, request):
        serializer = self.ConsentCreateInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        patient, purpose = _patient_and_purpose(data)
        form = selectors.consent_form(version=data.pop("form_version", None))
        if form is None:
            raise ValidationError({"form_version": ["No such consent form version."]})
        if data["source"] == Source.VERBAL and not data["witness"]:
            raise ValidationError({"witness": ["A verbal consent needs a witness."]})
        try:
            record = consent_record(patient=patient, purpose=purpose, form=form,
                                    actor=request_actor(request), **data)
        except DjangoValidationError as exc:
            raise ValidationError(exc.message_dict) from None
        return Response(ConsentOut(record).data, status=status.HTTP_201_CREATED)



class ConsentWithdrawApi(APIView):
    """Say no from now on for a purpose and scope: as easy as saying yes."""

    permission_classes = [scoped(TokenScope.CONSENT_WRITE, Role.STAFF)]

    class ConsentWithdrawInputSerializer(serializers.Serializer):
        patient = serializers.IntegerField(min_value=1)
        purpose = serializers.SlugField(max_length=64)
        scope_kind = serializers.ChoiceField(choices=ScopeKind.choices, default=ScopeKind.ALL)
        scope_value = serializers.CharField(max_length=64, required=False, default="",
                                            allow_blank=True)
        source = serializers.ChoiceField(choices=STAFF_SOURCES, default=Source.API)

    @extend_schema(request=ConsentWithdrawInputSerializer, responses={201: ConsentOut})
    def post(self, request):
        serializer = self.ConsentWithdrawInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        patient, purpose = _patient_and_purpose(data)
        try:
            record = consent_withdraw(patient=patient, purpose=purpose,
                                      form=selectors.current_form(),
                                      actor=request_actor(request), **data)
        except DjangoValidationError as exc:
            raise ValidationError(exc.message_dict) from None
        return Response(ConsentOut(record).data, status=status.HTTP_201_CREATED)
