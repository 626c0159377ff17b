from django.core.management.base import BaseCommand, CommandError

from consent.selectors import records_outside_vocabulary


class Command(BaseCommand):
    help = ("List consent records whose scope value is not in the vocabulary (a modality "
            "code, a body region, or a study of the patient). Exit status 1 when any is "
            "found: such a record matches nothing, so the patient's choice is not applied.")

    def handle(self, *args, **options):
        found = records_outside_vocabulary()
        for record, why in found:
            self.stdout.write(
                f"record {record.pk}: patient {record.patient.mrn} ({record.patient.issuer}), "
                f"{record.decision} {record.scope_kind} {record.scope_value!r}: {why}")
        if found:
            raise CommandError(f"{len(found)} consent record(s) outside the vocabulary; "
                               "record the choice again with a known term")
        self.stdout.write("Every consent record's scope value is in the vocabulary.")
