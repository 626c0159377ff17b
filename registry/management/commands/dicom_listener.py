from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from registry.listener import listener_start


class Command(BaseCommand):
    help = ("Run the DICOM listener: a C-STORE SCP that registers every instance a PACS or "
            "modality sends, and answers C-ECHO. Stops with Ctrl-C.")

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=11112)
        parser.add_argument("--ae-title", default=settings.CONSENTRY_DICOM_AE_TITLE)
        parser.add_argument("--host", default="0.0.0.0",  # noqa: S104 - PACS are remote
                            help="address to listen on (default: all)")
        parser.add_argument("--allow", action="append", default=None, metavar="AE_TITLE",
                            help="accept only these calling AE titles (repeat; default: "
                                 "CONSENTRY_DICOM_ALLOWED_AES, or any when that is empty)")

    def handle(self, *args, port, ae_title, host, allow, **options):
        if not 0 < port < 65536:
            raise CommandError(f"--port must be between 1 and 65535, not {port}")
        ae_title = ae_title.strip()
        if not ae_title or len(ae_title) > 16 or not ae_title.isascii() or "\\" in ae_title:
            raise CommandError("--ae-title must be 1 to 16 ASCII characters, no backslash")
        allowed = allow if allow is not None else settings.CONSENTRY_DICOM_ALLOWED_AES
        self.stdout.write(f"DICOM listener {ae_title} on {host}:{port}; calling AE titles: "
                          f"{', '.join(allowed) if allowed else 'any'}")
        try:
            listener_start(port=port, ae_title=ae_title, allowed_aes=allowed, host=host)
        except OSError as exc:
            raise CommandError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
        except KeyboardInterrupt:
            self.stdout.write("stopped")
