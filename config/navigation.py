"""One navigation for every page: the sections the signed-in person may open, in the order
they use them. A link is shown only where the access matrix says "yes", so nobody is offered
a page that answers 403 (an admin with no role sees Administration, not the consoles)."""

from django.conf import settings
from django.http import HttpRequest
from django.urls import reverse

# Marks the labels for makemessages; base.html translates them when it shows them.
from django.utils.translation import gettext_noop as N_

from access.roles import Role, allowed_scopes, user_roles


def _sections(request: HttpRequest) -> list[tuple[str, str]]:
    user = request.user
    if not user.is_authenticated:
        return [(N_("Help"), reverse("help"))]
    roles = user_roles(user)
    sections: list[tuple[str, str]] = []
    if Role.PATIENT in roles:
        sections.append((N_("My choices"), reverse("portal")))
    if Role.STAFF in roles:
        sections.append((N_("Desk"), reverse("desk")))
    if Role.STEWARD in roles:
        sections.append((N_("Datasets"), reverse("datasets")))
    if Role.PRIVACY_OFFICER in roles:
        sections.append((N_("Approvals"), reverse("dataset-approvals")))
    if Role.AUDITOR in roles:
        sections.append((N_("Auditor"), reverse("audit-dashboard")))
    if allowed_scopes(user):
        sections.append((N_("API tokens"), reverse("tokens")))
    if user.is_superuser:
        sections.append((N_("All tokens"), reverse("tokens-all")))
    if user.is_staff:
        sections.append((N_("Administration"), reverse("admin:index")))
    if roles - {Role.PATIENT} or user.is_superuser:
        sections.append((N_("API docs"), reverse("api-docs")))
    sections.append((N_("Help"), reverse("help")))
    return sections


def navigation(request: HttpRequest) -> dict:
    """Template context: ``nav`` as (label, url, current) with the longest matching prefix
    marked current, so /audit/events/ marks "Auditor" and not "Help"."""
    sections = _sections(request)
    path = request.path
    matches = [url for _, url in sections if url != "/" and path.startswith(url)]
    current = max(matches, key=len) if matches else None
    return {"nav": [(label, url, url == current) for label, url in sections],
            "help_contact": settings.CONSENTRY_HELP_CONTACT,
            "works_here": _works_here(request)}


def _works_here(request: HttpRequest) -> bool:
    """Whether the person is staff-side (any role but patient, or an admin): the help page
    then adds the notes meant for them."""
    user = request.user
    return user.is_authenticated and bool(user_roles(user) - {Role.PATIENT} or user.is_superuser)
