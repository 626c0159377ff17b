from django.core.management.base import BaseCommand, CommandError

from audit import checkpoints
from audit.verification import verification_run


class Command(BaseCommand):
    help = ("Verify the ledger's hash chain against every signed checkpoint; exit non-zero "
            "naming the first bad event. --checkpoint also signs the current head.")

    def add_arguments(self, parser):
        parser.add_argument("--checkpoint", action="store_true",
                            help="after a clean verification, sign a checkpoint of the head")

    def handle(self, *args, checkpoint, **options):
        run = verification_run(trigger="command")
        if not run.ok:
            raise CommandError("LEDGER BROKEN: " + run.problem.replace("\n", "\n  "))
        self.stdout.write(self.style.SUCCESS(
            f"Ledger intact: {run.checked} events chained, checked against "
            f"{run.checkpoints} signed checkpoints; every vouched row matches its event."))
        if run.pending:
            self.stdout.write(f"{run.pending} recent events are waiting to be chained.")
        if checkpoint:
            written = checkpoints.checkpoint_write()
            if written:
                self.stdout.write(f"Checkpoint written: {written}")
