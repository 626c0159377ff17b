from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.views.decorators.http import require_safe

from access.roles import Role, allowed_scopes, user_roles
from consent.selectors import patients_for_user


@login_required
def home(request):
    roles = user_roles(request.user)
    if roles == {Role.PATIENT} or (not roles and patients_for_user(request.user).exists()):
        return redirect("portal")
    return render(request, "home.html", {"roles": [Role(r).label for r in sorted(roles)],
                                         "can_hold_tokens": bool(allowed_scopes(request.user))})


@require_safe  # a page to read: a POST to it is a mistake, not a form
def help_page(request):
    """Open to everyone, signed in or not: what the portal is for and whom to ask."""
    return render(request, "help.html")
