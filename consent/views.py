from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from consent.roles import user_roles


@login_required
def home(request):
    return render(request, "home.html", {"roles": sorted(user_roles(request.user))})
