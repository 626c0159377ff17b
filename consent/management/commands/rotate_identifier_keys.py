"""Re-encrypt every direct identifier under the first of CONSENTRY_IDENTIFIER_KEYS and
recompute the blind indexes under CONSENTRY_BLIND_INDEX_KEY (README, "Identifiers at rest").
It lives in consent because it covers consent's invitations as well as the registry."""

from django.core.management.base import BaseCommand
from django.db import transaction

from audit import codes, ledger
from audit.ledger import Actor
from consent.models import PatientInvite
from consent.rekeying import records_rekey
from registry.rekeying import patients_rekey, studies_rekey


class Command(BaseCommand):
    help = ("Re-encrypt patients' identifiers (and the names on consent records) under the "
            "newest identifier key and recompute their blind indexes; run after adding a key "
            "(or changing the blind-index key).")

    def handle(self, *args, **options):
        patients = patients_rekey()
        studies = studies_rekey()
        invites = list(PatientInvite.objects.only("pk", "email"))
        # Consent records in one transaction with the event: their append-only guard is
        # lifted only inside it (consent/rekeying.py), so a failure leaves it in place.
        with transaction.atomic():
            PatientInvite.objects.bulk_update(invites, ["email"], batch_size=1000)
            records = records_rekey()
            ledger.record(action="identifiers.rekeyed", event_code=codes.APPLICATION_ACTIVITY,
                          actor=Actor.system("rotate_identifier_keys"),
                          details={"patients": patients, "studies": studies,
                                   "invites": len(invites), "consent_records": records})
        self.stdout.write(f"Re-encrypted {patients} patients, {studies} studies, "
                          f"{len(invites)} invitations and {records} consent records under "
                          "the newest key; blind indexes recomputed. Older keys can now be "
                          "removed from CONSENTRY_IDENTIFIER_KEYS.")
