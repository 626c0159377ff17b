"""FHIR R4 Consent, both ways: our records as Consent resources, and Consent resources (an
EHR's export, a POST) mapped onto our records through the consent services."""
