"""The API's paths have no trailing slash; one added by hand (or by a client library) must
reach the same endpoint, not a 404. A redirect would make clients re-send a POST body
(many drop it), so the path is read as if the slash were not there."""

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

API_PREFIX = "/api/v1/"


class ApiTrailingSlashMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        path = request.path_info
        if path.startswith(API_PREFIX) and len(path) > len(API_PREFIX) and path.endswith("/"):
            request.path_info = path.rstrip("/")
        return self.get_response(request)
