from django.urls import path

from access import views

# Mounted under /desk/tokens/: staff manage their tokens beside the rest of their desk.
urlpatterns = [
    path("", views.tokens, name="desk-tokens"),
    path("<int:token_id>/revoke/", views.revoke_token, name="desk-token-revoke"),
]
