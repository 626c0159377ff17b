import getpass

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from audit.ledger import Actor
from datasets.delivery import dataset_destination_set
from datasets.models import Dataset


class Command(BaseCommand):
    help = ("Send a dataset's next versions to a destination from CONSENTRY_DESTINATIONS "
            "(a DICOM node or a STOW-RS endpoint), or stop with --none.")

    def add_arguments(self, parser):
        parser.add_argument("dataset", type=int, help="the dataset's id")
        target = parser.add_mutually_exclusive_group(required=True)
        target.add_argument("destination", nargs="?", help="a destination's name")
        target.add_argument("--none", action="store_true", help="stop sending")

    def handle(self, *args, dataset, destination, none, **options):
        found = Dataset.objects.select_related("purpose").filter(pk=dataset).first()
        if found is None:
            raise CommandError(f"no dataset {dataset}")
        try:
            dataset_destination_set(dataset=found, name="" if none else destination,
                                    actor=Actor(label=f"cli:{getpass.getuser()}",
                                                role="operator"))
        except ValidationError as exc:
            known = ", ".join(sorted(settings.CONSENTRY_DESTINATIONS)) or "none configured"
            raise CommandError(f"{'; '.join(exc.messages)} (known: {known})") from None
        self.stdout.write(f"dataset {found.pk}: "
                          f"{'no destination' if none else f'sent to {destination}'} "
                          "from its next version on")
