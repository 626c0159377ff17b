"""Staff manage their own API tokens on /tokens/: shown once, revoked, never another's."""


from access.models import ApiToken
from tests.clients import signed_in as client_for
from tests.conftest import make_user


def test_staff_create_a_token_see_it_once_and_revoke_it(staff):
    client = client_for(staff)
    page = client.post("/tokens/", {"name": "PACS router",
                                         "scopes": ["ingest", "consent:read"]}).content.decode()
    secret = page.split('<code id="new-token">')[1].split("</code>")[0]
    token = ApiToken.objects.get()
    assert secret.startswith(f"cst_{token.prefix}_")
    assert secret not in client.get("/tokens/").content.decode()
    client.post(f"/tokens/{token.pk}/revoke/")
    token.refresh_from_db()
    assert token.revoked_at is not None


def test_a_token_needs_a_scope(staff):
    page = client_for(staff).post("/tokens/", {"name": "x"}).content.decode()
    assert "This field is required" in page
    assert ApiToken.objects.count() == 0


def test_staff_cannot_revoke_someone_elses_token(staff):
    other = make_user("sally-staff", "staff")
    client_for(other).post("/tokens/", {"name": "theirs", "scopes": ["ingest"]})
    token = ApiToken.objects.get()
    assert client_for(staff).post(f"/tokens/{token.pk}/revoke/").status_code == 404
    token.refresh_from_db()
    assert token.revoked_at is None
