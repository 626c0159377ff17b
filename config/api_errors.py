"""Every API error is JSON with a message and, where one is to blame, the field."""

from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import defaults
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler


def _first_field_error(detail: Any, prefix: str = "") -> tuple[str, str] | None:
    if isinstance(detail, dict):
        for key, value in detail.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            if key == "non_field_errors":
                name = prefix
            found = _first_field_error(value, name)
            if found:
                return found
    elif isinstance(detail, list):
        for index, value in enumerate(detail):
            nested = isinstance(value, (dict, list))
            found = _first_field_error(value, f"{prefix}[{index}]" if nested else prefix)
            if found:
                return found
    elif detail is not None:
        return prefix, str(detail)
    return None


def exception_handler(exc: Exception, context: dict) -> Response | None:
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    detail = response.data
    if isinstance(detail, dict) and set(detail) == {"detail"}:
        response.data = {"error": {"message": str(detail["detail"]), "field": None}}
        return response
    found = _first_field_error(detail)
    field, message = found if found else (None, "Invalid request.")
    response.data = {"error": {"message": message, "field": field or None, "fields": detail}}
    return response


ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["message", "field"],
            "properties": {
                "message": {"type": "string",
                            "description": "What was wrong, in words a developer can act on."},
                "field": {"type": "string", "nullable": True,
                          "description": "The request field to blame (dotted for nested "
                                         "fields, e.g. 'study_instance_uids[3]'), or null "
                                         "when the error is not about one field."},
                "fields": {"type": "object", "additionalProperties": True,
                           "description": "Every field's errors, as DRF reports them; "
                                          "present on 400 validation errors only."},
            },
        },
    },
}
ERROR_RESPONSES = {
    "400": "The request is invalid; 'field' names the offending field.",
    "401": "No valid credentials (session or 'Authorization: Bearer <token>').",
    "403": "Signed in, but not allowed (missing scope or role).",
    "404": "Not found.",
    "405": "Method not allowed.",
    "409": "Not possible in the resource's present state (e.g. an export not complete).",
    "415": "Unsupported media type: send JSON ('Content-Type: application/json'); "
           "form-encoded bodies are refused (uploads: multipart where documented).",
    "429": "Too many requests for this token; try again after Retry-After seconds.",
    "503": "Consent could not be read; treat every study as not allowed.",
}


def document_errors(result: dict, generator, request, public) -> dict:
    """drf-spectacular post-processing hook: every operation may answer with the common
    error format, and the schema says so."""
    result.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_SCHEMA
    for path in result.get("paths", {}).values():
        for operation in path.values():
            responses = operation.setdefault("responses", {})
            for code, description in ERROR_RESPONSES.items():
                responses.setdefault(code, {
                    "description": description,
                    "content": {"application/json": {
                        "schema": {"$ref": "#/components/schemas/Error"}}},
                })
    return result


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    """Django's own 400s (too many fields, a malformed upload) keep the API's error format
    under /api/; pages keep the HTML one."""
    if request.path.startswith("/api/"):
        return JsonResponse({"error": {"message": "The request could not be read: too large "
                                                  "or malformed.", "field": None}}, status=400)
    return defaults.bad_request(request, exception)


def permission_denied(request: HttpRequest, exception: Exception) -> HttpResponse:
    if request.path.startswith("/api/"):
        return JsonResponse({"error": {"message": "Not allowed.", "field": None}}, status=403)
    return defaults.permission_denied(request, exception)


def not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    if request.path.startswith("/api/"):
        return JsonResponse({"error": {"message": "Not found.", "field": None}}, status=404)
    return defaults.page_not_found(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    if request.path.startswith("/api/"):
        return JsonResponse({"error": {"message": "Internal error; nothing was changed.",
                                       "field": None}}, status=500)
    return defaults.server_error(request)
