"""The admins' token page: a revocation naming no token by number is a 404, never a 500,
and revokes nothing."""

import pytest

from access.models import ApiToken
from access.tokens import api_token_create
from audit.ledger import Actor
from tests.clients import signed_in
from tests.conftest import make_user


@pytest.mark.parametrize("value", ["abc", "²", "\x00", "", "1.5", "9" * 30])
def test_revoking_a_token_that_is_no_number_is_a_404(staff, value):
    admin = make_user("root")
    admin.is_superuser = admin.is_staff = True
    admin.save()
    api_token_create(owner=staff, name="router", scopes=["ingest"], actor=Actor(label="a"))
    response = signed_in(admin).post("/tokens/all/", {"token": value})
    assert response.status_code == 404
    assert not ApiToken.objects.filter(revoked_at__isnull=False).exists()
