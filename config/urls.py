from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from access import two_factor_views
from access import views as access_views
from consent import views as consent_views
from datasets import views as datasets_views

api_v1 = [
    path("", include("registry.api_urls")),
    path("", include("consent.api.urls")),
    path("", include("datasets.api_urls")),
]

urlpatterns = [
    path("", consent_views.home, name="home"),
    path("help/", consent_views.help_page, name="help"),
    path("login/", access_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("login/verify/", two_factor_views.verify, name="two-factor-verify"),
    path("account/two-factor/", two_factor_views.setup, name="two-factor-setup"),
    path("password-reset/", access_views.PasswordResetView.as_view(), name="password-reset"),
    path("password-reset/sent/", access_views.PasswordResetSentView.as_view(),
         name="password-reset-sent"),
    path("password-reset/<uidb64>/<token>/", access_views.PasswordResetConfirmView.as_view(),
         name="password-reset-confirm"),
    path("password-reset/done/", access_views.PasswordResetCompleteView.as_view(),
         name="password-reset-complete"),
    path("portal/", include("consent.portal.urls")),
    path("tokens/", include("access.urls")),
    path("desk/", include("consent.desk.urls")),
    path("audit/", include("audit.urls")),
    path("datasets/", include("datasets.urls")),
    path("exports/public-key/", datasets_views.export_public_key, name="export-public-key"),
    # Admins sign in like everyone else: password, second factor, ledger events.
    path("admin/login/", RedirectView.as_view(pattern_name="login", query_string=True)),
    path("admin/", admin.site.urls),
    path("api/v1/", include(api_v1)),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # The split view serves its start-up script as a file, so the CSP needs no inline script.
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="api-docs"),
]

handler400 = "config.api_errors.bad_request"
handler403 = "config.api_errors.permission_denied"
handler404 = "config.api_errors.not_found"
handler500 = "config.api_errors.server_error"
