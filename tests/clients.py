"""Clients signed in as a persona or holding a token, shared by page and API tests."""

from django.test import Client
from rest_framework.test import APIClient

from access.tokens import api_token_create
from audit.ledger import Actor


def signed_in(user) -> Client:
    """A browser-like client with the user's session (CSRF checks as in production)."""
    client = Client()
    client.force_login(user)
    return client


def api_as(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def api_with_token(owner, *scopes: str) -> APIClient:
    """An API client holding a fresh token of ``owner`` with ``scopes``."""
    _, secret = api_token_create(owner=owner, name="system", scopes=list(scopes),
                                 actor=Actor(label="admin"))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client
