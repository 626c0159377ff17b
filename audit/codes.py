"""DICOM PS3.15 / IHE ATNA event IDs (DCM codes) that ledger events carry. One list, so
every app names an event the same way and the FHIR export can display them."""

APPLICATION_ACTIVITY = "110100"
EXPORT = "110106"
IMPORT = "110107"
PATIENT_RECORD = "110110"
QUERY = "110112"
USER_AUTHENTICATION = "110114"

DISPLAY = {APPLICATION_ACTIVITY: "Application Activity", EXPORT: "Export", IMPORT: "Import",
           PATIENT_RECORD: "Patient Record", QUERY: "Query",
           USER_AUTHENTICATION: "User Authentication"}
