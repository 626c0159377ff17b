"""FHIR R4 Consent over the API: search and read our records as Consent resources, create
records from Consent resources. Answers are FHIR JSON; refusals are OperationOutcomes."""

import re

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from access.api_auth import ReadsPatientData, request_actor, scoped
from access.models import TokenScope
from access.roles import Role
from audit import codes, ledger
from config.parsers import BoundedJSONParser
from consent.engine import PurposeTree
from consent.fhir.imports import FhirRefused, consent_fhir_import
from consent.fhir.resources import (
    MRN_SYSTEM_PREFIX,
    consent_bundle,
    consent_resources,
    operation_outcome,
)
from consent.models import ConsentRecord
from registry.models import Patient
from registry.selectors import patient_by_identifier


class FhirJSONRenderer(JSONRenderer):
    media_type = "application/fhir+json"


class FhirJSONParser(BoundedJSONParser):
    media_type = "application/fhir+json"


FHIR_RENDERERS = [FhirJSONRenderer, JSONRenderer]
FHIR_PARSERS = [FhirJSONParser, BoundedJSONParser]


def _records() -> QuerySet[ConsentRecord]:
    return ConsentRecord.objects.select_related("patient", "purpose", "form").order_by(
        "recorded_at", "id")


def _patient_from(param: str) -> Patient | None:
    """``patient=`` as our id, ``Patient/<id>``, or an identifier token ``system|value``."""
    if "|" in param:
        system, _, value = param.partition("|")
        if not system.startswith(MRN_SYSTEM_PREFIX):
            return None
        return patient_by_identifier(issuer=system.removeprefix(MRN_SYSTEM_PREFIX), mrn=value)
    param = param.removeprefix("Patient/")
    # ASCII digits only: str.isdigit() also accepts "²", which int() refuses.
    return Patient.objects.filter(pk=int(param)).first() if re.fullmatch(r"[0-9]+", param) \
        else None


def _logged_read(request, patient_id: int, what: str) -> None:
    ledger.record(action="phi.viewed", event_code=codes.PATIENT_RECORD,
                  actor=request_actor(request), patient_ref=patient_id,
                  details={"what": what, "via": "fhir"})


class FhirConsentApi(APIView):
    """``GET /fhir/Consent?patient=`` (search) and ``POST /fhir/Consent`` (create)."""

    renderer_classes = FHIR_RENDERERS
    parser_classes = FHIR_PARSERS

    def get_permissions(self):
        # Reading needs consent:read, writing consent:write: one FHIR endpoint, two rights.
        if self.request.method == "POST":
            return [scoped(TokenScope.CONSENT_WRITE, Role.STAFF)()]
        return [ReadsPatientData()]

    @extend_schema(operation_id="fhir_consent_search",
                   parameters=[OpenApiParameter("patient", str, required=True)],
                   responses={200: dict, 400: dict})
    def get(self, request):
        param = request.query_params.get("patient", "").strip()
        if not param:
            return Response(operation_outcome([("patient", "search by patient: ?patient=<id>"
                                                " or ?patient=<system>|<MRN>")]),
                            status=status.HTTP_400_BAD_REQUEST)
        patient = _patient_from(param)
        if patient is None:
            # An unknown patient is an empty search result, as FHIR servers answer.
            return Response(consent_bundle([]))
        _logged_read(request, patient.pk, "consent records (FHIR)")
        return Response(consent_bundle(_records().filter(patient=patient)))

    @extend_schema(operation_id="fhir_consent_create", request=dict,
                   responses={201: dict, 400: dict, 422: dict})
    def post(self, request):
        try:
            records = consent_fhir_import(
                document=request.data, actor=request_actor(request),
                default_purpose=request.query_params.get("purpose", "").strip())
        except FhirRefused as exc:
            return Response(operation_outcome(exc.issues),
                            status=status.HTTP_422_UNPROCESSABLE_ENTITY)
        tree = PurposeTree.load()
        saved = _records().filter(pk__in=[r.pk for r in records])
        return Response(consent_bundle(saved, tree), status=status.HTTP_201_CREATED)


class FhirConsentReadApi(APIView):
    """``GET /fhir/Consent/{id}``: one record. Reading it is logged."""

    renderer_classes = FHIR_RENDERERS
    permission_classes = [ReadsPatientData]

    @extend_schema(operation_id="fhir_consent_read", responses={200: dict, 404: dict})
    def get(self, request, consent_id: int):
        record = _records().filter(pk=consent_id).first()
        if record is None:
            return Response(operation_outcome([("id", "no such Consent")], code="not-found"),
                            status=status.HTTP_404_NOT_FOUND)
        _logged_read(request, record.patient_id, "consent record (FHIR)")
        # An exception given with a general choice is read as part of that Consent.
        return Response(next(resource for ids, resource in consent_resources(
            _records().filter(patient_id=record.patient_id)) if record.pk in ids))
