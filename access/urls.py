from django.urls import path

from access import views

urlpatterns = [
    path("", views.tokens, name="tokens"),
    path("<int:token_id>/revoke/", views.revoke_token, name="token-revoke"),
    path("all/", views.all_tokens, name="tokens-all"),
]
