"""Every API error is JSON with a message and, where one is to blame, the field."""

from typing import Any

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
