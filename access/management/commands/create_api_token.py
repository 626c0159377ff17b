from datetime import timedelta

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from access.models import TokenScope
from access.tokens import api_token_create
from audit.ledger import Actor


class Command(BaseCommand):
    help = "Create an API token for another system and print it (shown only this once)."

    def add_arguments(self, parser):
        parser.add_argument("--owner", required=True, help="username the token acts for")
        parser.add_argument("--name", required=True, help="who uses it, e.g. 'PACS router'")
        parser.add_argument("--scope", action="append", required=True,
                            choices=TokenScope.values, help="repeat for several scopes")
        parser.add_argument("--days", type=int, help="expire after this many days")

    def handle(self, *args, owner, name, scope, days, **options):
        user = get_user_model().objects.filter(username=owner).first()
        if user is None:
            raise CommandError(f"no user {owner!r}")
        if days is not None and days < 1:
            raise CommandError("--days must be 1 or more")
        try:
            token, secret = api_token_create(
                owner=user, name=name, scopes=scope, actor=Actor(label="cli", role="admin"),
                expires_at=timezone.now() + timedelta(days=days) if days else None)
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from exc
        self.stdout.write(secret)
        self.stderr.write(f"Token {token.prefix} for {owner}: {', '.join(token.scopes)}. "
                          "Store it now; it is not shown again.")
