import getpass
import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from audit.ledger import Actor
from consent.fhir.imports import FhirRefused, consent_fhir_import


class Command(BaseCommand):
    help = ("Import FHIR R4 Consent resources (a Consent or a Bundle per file, as an EHR "
            "exports them) as consent records. Each file is all or nothing: a Consent that "
            "cannot be mapped is reported with the element to blame, and that file imports "
            "nothing.")

    def add_arguments(self, parser):
        parser.add_argument("files", nargs="+", help="JSON files (Consent or Bundle)")
        parser.add_argument("--purpose", default="",
                            help="purpose code for Consents that name no purpose we know "
                                 "of (say, an EHR's general research consent)")

    def handle(self, *args, files, purpose, **options):
        actor = Actor(label=f"cli:{getpass.getuser()}", role="operator")
        failed = 0
        for name in files:
            try:
                document = json.loads(Path(name).read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, ValueError) as exc:
                self.stderr.write(f"{name}: not readable as JSON: {exc}")
                failed += 1
                continue
            try:
                records = consent_fhir_import(document=document, actor=actor,
                                              default_purpose=purpose)
            except FhirRefused as exc:
                failed += 1
                self.stderr.write(f"{name}: refused, nothing imported:")
                for where, why in exc.issues:
                    self.stderr.write(f"  {where or '(document)'}: {why}")
                continue
            self.stdout.write(f"{name}: imported {len(records)} consent records")
        if failed:
            raise CommandError(f"{failed} of {len(files)} files were not imported")
