import getpass

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from audit.ledger import Actor
from registry.dicomweb import SourceUnavailable, dicomweb_poll


class Command(BaseCommand):
    help = ("Ask DICOMweb sources (CONSENTRY_DICOMWEB_SOURCES) for their studies with QIDO-RS "
            "and register the metadata of those not yet registered whole. No pixel is "
            "copied: exports fetch instances with WADO-RS when they need them.")

    def add_arguments(self, parser):
        parser.add_argument("--source", action="append", default=None,
                            help="poll only this source (repeat); default: every source")

    def handle(self, *args, source, **options):
        names = source or sorted(settings.CONSENTRY_DICOMWEB_SOURCES)
        if not names:
            raise CommandError("no DICOMweb source is configured: set "
                               "CONSENTRY_DICOMWEB_SOURCES=name=https://pacs/dicom-web")
        actor = Actor(label=f"cli:{getpass.getuser()}", role="operator")
        failed = []
        for name in names:
            try:
                summary = dicomweb_poll(source=name, actor=actor).as_dict()
            except SourceUnavailable as exc:
                self.stderr.write(f"{name}: {exc}; nothing registered from it")
                failed.append(name)
                continue
            self.stdout.write(
                f"{name}: registered {summary['registered']}, already known "
                f"{summary['known']}, conflicting {summary['conflict']}, rejected "
                f"{summary['rejected']}.")
            for problem in summary["problems"]:
                self.stdout.write(f"  {problem['status']}: {problem['path']}: "
                                  f"{problem['reason']}")
        if failed:
            raise CommandError(f"could not poll: {', '.join(failed)}")
