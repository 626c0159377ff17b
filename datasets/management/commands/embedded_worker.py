import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from audit.ledger import seal_quietly
from audit.models import PendingSeal
from outbox.services import outbox_deliver, outbox_due


class Command(BaseCommand):
    help = ("A worker for the embedded mode (no broker): delivers the outbox's pending "
            "messages (exports, notices, emails) by polling the database, and seals the "
            "ledger after them. Run it beside a web process started with "
            "CONSENTRY_TASKS_INLINE=false; `make demo` does.")

    def add_arguments(self, parser):
        parser.add_argument("--every", type=float, default=0.5,
                            help="seconds between looks at the outbox when idle (0.5)")
        parser.add_argument("--once", action="store_true",
                            help="deliver what is due now, then stop")

    def handle(self, *args, every: float, once: bool, **options):
        if settings.REDIS_URL:
            raise CommandError("REDIS_URL is set: run Celery workers (`make worker`) instead")
        if not 0.05 <= every <= 60:
            raise CommandError("--every must be between 0.05 and 60 seconds")
        self.stdout.write("Embedded worker: delivering the outbox (Ctrl-C stops it).")
        while True:
            due = outbox_due()
            for message_id in due:
                outbox_deliver(message_id=message_id)
            # The web process cannot wake a sealer without a broker: this worker seals
            # what it wrote and what the web process wrote.
            if due or PendingSeal.objects.exists():
                seal_quietly()
            if once:
                return
            if not due:
                time.sleep(every)
