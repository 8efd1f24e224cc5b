"""The OpenAPI document declares what every route can answer, not only what its handler
raises: the layers in front of the routes answer too (401 without a key, 413 for a body
over its limit, 400 for a body that is not JSON at all, 500 for an unexpected error), and
validation errors in the shape the handler gives them."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

_ERROR_SCHEMA = {"$ref": "#/components/schemas/ErrorOut"}
_OPENAI_SCHEMA = {"$ref": "#/components/schemas/OpenAIError"}
_LAYER_RESPONSES = {
    "400": "The body cannot be parsed",
    "401": "Missing or invalid API key",
    "413": "Payload too large",
    "500": "Unexpected error (code internal_error)",
}
_BODY_ONLY = frozenset({"400", "413"})


def install_openapi(app: FastAPI, public_paths: frozenset[str]) -> None:
    """Adds the layers' answers to every operation of ``app``'s OpenAPI document."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = build()
        schemas = document.get("components", {}).get("schemas", {})
        for path, operations in document.get("paths", {}).items():
            for operation in operations.values():
                responses = operation.setdefault("responses", {})
                validation = responses.get("422", {}).get("content", {}).get("application/json")
                if validation is not None and "HTTPValidationError" in str(validation):
                    # Validation errors leave as {"detail", "code", "errors"} (see errors.py),
                    # or in OpenAI's envelope under /v1/.
                    validation["schema"] = (
                        _OPENAI_SCHEMA
                        if path.startswith("/v1/") and "OpenAIError" in schemas
                        else _ERROR_SCHEMA
                    )
                # The layers answer in the error shape of the path (/v1/ speaks OpenAI's).
                shape = validation["schema"] if validation is not None else _ERROR_SCHEMA
                for code, description in _LAYER_RESPONSES.items():
                    if code in responses:
                        continue
                    if code in _BODY_ONLY and "requestBody" not in operation:
                        continue
                    if code == "401" and path in public_paths:
                        continue
                    responses[code] = {
                        "description": description,
                        "content": {"application/json": {"schema": shape}},
                    }
        document.setdefault("components", {}).setdefault("schemas", {}).setdefault(
            "ErrorOut",
            {
                "type": "object",
                "required": ["detail", "code"],
                "properties": {"detail": {"type": "string"}, "code": {"type": "string"}},
            },
        )
        app.openapi_schema = document
        return document

    app.openapi = openapi  # type: ignore[method-assign]
