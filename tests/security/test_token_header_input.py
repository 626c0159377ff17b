"""Bearer tokens that are not shaped like ours: a 401 naming the problem, never a 500
(gunicorn refuses a NUL in a header, other servers in front may not)."""

import pytest
from rest_framework.test import APIClient


@pytest.mark.parametrize("presented", ["cst_a\x00b_secret", "cst_\x00_x", "cst_" + "f" * 300 + "_x",
                                       "cst_abcdefabcdef_\x00"])
def test_a_malformed_token_is_a_401(db, presented):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {presented}")
    response = client.get("/api/v1/purposes")
    assert response.status_code == 401
    assert response.json()["error"]["message"] in ("Invalid API token.", "Malformed API token.")
