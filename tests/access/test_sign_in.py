"""Sign-in: the page, its ledger events and the lockout after repeated failures."""

from django.test import Client


def test_sign_in_page_is_served_with_a_strict_content_security_policy(db):
    response = Client().get("/login/")
    assert response.status_code == 200
    assert b'<label for="id_username">' in response.content
    csp = response.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "script-src 'self'" in csp


def test_a_user_signs_in_and_sees_their_role(db):
    from tests.conftest import make_user

    make_user("ruth", None)
    client = Client()
    response = client.post("/login/", {"username": "ruth", "password": "pw-ruth"},
                           follow=True)
    assert response.status_code == 200
    assert b"no role yet" in response.content


def test_a_wrong_password_says_so_and_does_not_sign_in(staff):
    client = Client()
    response = client.post("/login/", {"username": staff.username, "password": "wrong"})
    assert response.status_code == 200
    assert b"did not match" in response.content
    assert client.get("/").status_code == 302


def test_logins_and_failed_logins_are_in_the_ledger(staff):
    from audit.models import AuditEvent

    client = Client()
    client.post("/login/", {"username": staff.username, "password": "wrong"},
                REMOTE_ADDR="10.1.2.3")
    client.post("/login/", {"username": staff.username, "password": "pw-" + staff.username})
    failed = AuditEvent.objects.get(action="login.failed")
    assert (failed.actor_label, failed.outcome, failed.event_code, failed.actor_ip) == (
        staff.username, "failure", "110114", "10.1.2.3")
    ok = AuditEvent.objects.get(action="login.succeeded")
    assert ok.actor_user_id == staff.pk and ok.actor_role == "staff"


def test_repeated_wrong_passwords_lock_the_username_out_even_with_the_right_one(staff):
    from audit.models import AuditEvent

    client = Client()
    for _ in range(5):
        client.post("/login/", {"username": staff.username, "password": "guess"})
    locked = client.post("/login/", {"username": staff.username,
                                     "password": "pw-" + staff.username})
    assert locked.status_code == 429
    assert b"Too many failed sign-ins" in locked.content
    assert client.get("/").status_code == 302  # not signed in
    assert AuditEvent.objects.filter(action="login.failed", outcome="denied").exists()
    # Someone else, from the same address, is not locked out.
    other = Client().post("/login/", {"username": "nobody-else", "password": "x"})
    assert other.status_code == 200
