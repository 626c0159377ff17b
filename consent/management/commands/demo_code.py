import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

from consent.management.commands.demo import DEMO_TOTP_KEY


class Command(BaseCommand):
    help = ("Print the current second-step code of a demo account (embedded demo only: "
            "refused with DATABASE_URL set, and for any account not set up by `demo`).")

    def add_arguments(self, parser):
        parser.add_argument("username")

    def handle(self, *args, username, **options):
        if settings.PRODUCTION:
            raise CommandError("demo_code works only in the embedded demo, not in production")
        device = TOTPDevice.objects.filter(user__username=username, key=DEMO_TOTP_KEY,
                                           confirmed=True).first()
        if device is None:
            raise CommandError(f"{username!r} is not a demo account with the demo "
                               "authenticator")
        totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
        totp.time = time.time()
        self.stdout.write(f"{totp.token():06d}")
