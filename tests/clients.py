"""Clients signed in as a persona or holding a token, shared by page and API tests."""

from django.test import Client
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.plugins.otp_totp.models import TOTPDevice
from rest_framework.test import APIClient

from access.tokens import api_token_create
from access.two_factor import needs_second_factor
from audit.ledger import Actor


def sign_in(client: Client, user) -> Client:
    """Sign ``user`` in on ``client``, second factor included when their roles need one
    (as if they had entered a code from their authenticator)."""
    client.force_login(user)
    if needs_second_factor(user):
        device = (TOTPDevice.objects.filter(user=user, confirmed=True).first()
                  or TOTPDevice.objects.create(user=user, name="authenticator", confirmed=True))
        session = client.session
        session[DEVICE_ID_SESSION_KEY] = device.persistent_id
        session.save()
    return client


def signed_in(user) -> Client:
    """A browser-like client with the user's session (CSRF checks as in production)."""
    return sign_in(Client(), user)


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


def demo_code(username: str) -> str:
    """The code a demo account's authenticator shows now (the demo prints the same key)."""
    from django_otp.oath import TOTP

    device = TOTPDevice.objects.get(user__username=username, confirmed=True)
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    return f"{totp.token():06d}"


def demo_sign_in(username: str, password: str) -> Client:
    """Sign in to the demo as a tester would: password, then the authenticator's code."""
    client = Client()
    assert client.post("/login/", {"username": username, "password": password}).status_code \
        == 302
    if TOTPDevice.objects.filter(user__username=username).exists():
        assert client.post("/login/verify/", {"code": demo_code(username)}).status_code == 302
    return client
