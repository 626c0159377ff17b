"""Email in production: SMTP settings from the environment, sent through a real SMTP server
(aiosmtpd, started here on a free port) and read back."""

import email
import email.policy
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller

from config.settings import smtp_options

ROOT = Path(__file__).resolve().parent.parent


class Inbox:
    def __init__(self) -> None:
        self.messages: list = []

    async def handle_DATA(self, server, session, envelope):  # aiosmtpd calls it by this name
        self.messages.append((envelope.rcpt_tos,
                              email.message_from_bytes(envelope.content,
                                                       policy=email.policy.default)))
        return "250 Message accepted for delivery"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def smtp_server():
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield controller.port, inbox
    finally:
        controller.stop()


def test_production_settings_send_mail_through_the_smtp_server_the_environment_names(
        smtp_server, tmp_path):
    port, inbox = smtp_server
    env = {k: v for k, v in os.environ.items() if k in {"PATH", "HOME", "LANG"}}
    env.update(DJANGO_SETTINGS_MODULE="config.settings", SECRET_KEY="k" * 60,
               DATABASE_URL="postgres://postgres@127.0.0.1:5432/unused",
               CONSENTRY_DATA_DIR=str(tmp_path), EMAIL_URL=f"smtp://127.0.0.1:{port}",
               DEFAULT_FROM_EMAIL="consentry@hospital.example",
               CONSENTRY_IDENTIFIER_KEYS="Y29uc2VudHJ5LXRlc3Qtb25seS1pZGVudGlmaWVyISE=",
               CONSENTRY_BLIND_INDEX_KEY="b" * 40)
    result = subprocess.run(
        [sys.executable, "manage.py", "sendtestemail", "steward@hospital.example"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert len(inbox.messages) == 1
    recipients, message = inbox.messages[0]
    assert recipients == ["steward@hospital.example"]
    assert message["From"] == "consentry@hospital.example"
    assert "Test email from" in message["Subject"]


@pytest.mark.parametrize(("url", "expected"), [
    ("smtp://mail.hospital.example", {"host": "mail.hospital.example", "port": 25,
                                      "use_tls": False, "use_ssl": False}),
    ("smtp+tls://consentry:s%40cret@mail.hospital.example",
     {"host": "mail.hospital.example", "port": 587, "use_tls": True, "use_ssl": False,
      "username": "consentry", "password": "s@cret"}),
    ("smtps://mail.hospital.example:2465", {"host": "mail.hospital.example", "port": 2465,
                                            "use_tls": False, "use_ssl": True}),
])
def test_email_urls_are_read_into_smtp_options(url, expected):
    options = smtp_options(url=url)
    assert {k: options[k] for k in expected} == expected
    assert options["timeout"] == 10  # a stuck server must not hold a worker forever


def test_an_email_url_of_another_kind_is_refused():
    from django.core.exceptions import ImproperlyConfigured

    with pytest.raises(ImproperlyConfigured, match="EMAIL_URL"):
        smtp_options(url="http://mail.hospital.example")
