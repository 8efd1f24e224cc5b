"""The OpenAPI document states the bounds the API enforces and every status it can answer."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient


def _parameter(document: dict[str, Any], path: str, method: str, name: str) -> dict[str, Any]:
    for parameter in document["paths"][path][method]["parameters"]:
        if parameter["name"] == name:
            schema: dict[str, Any] = parameter["schema"]
            return schema.get("anyOf", [schema])[0]
    raise AssertionError(f"{method} {path} has no parameter {name}")


def test_inputs_have_explicit_bounds(app_client: TestClient) -> None:
    document = app_client.get("/openapi.json").json()
    assert _parameter(document, "/fine-tuning/task", "get", "offset")["maximum"] == 10**9
    assert _parameter(document, "/fine-tuning/task", "get", "limit")["maximum"] == 1000
    assert _parameter(document, "/fine-tuning/task", "post", "Idempotency-Key")["maxLength"] == 255
    for path, name in [
        ("/fine-tuning/task/{task_id}", "task_id"),
        ("/batches/{batch_id}", "batch_id"),
        ("/models/{model_id}", "model_id"),
    ]:
        assert "maxLength" in _parameter(document, path, "get", name), path
    body = document["paths"]["/batches"]["post"]["requestBody"]["content"]["application/json"]
    examples = body["schema"]["properties"]["examples"]
    assert examples["maxItems"] > 0
    assert examples["items"]["properties"]["query"]["maxLength"] > 0


def test_overlong_path_id_is_422(app_client: TestClient) -> None:
    response = app_client.get("/fine-tuning/task/" + "x" * 65)
    assert response.status_code == 422
    assert response.json()["code"] == "validation_error"


def test_every_operation_declares_the_answers_of_the_layers_in_front(
    app_client: TestClient,
) -> None:
    document = app_client.get("/openapi.json").json()
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            assert "500" in operation["responses"], (method, path)
            if "requestBody" in operation:
                assert {"400", "413"} <= set(operation["responses"]), (method, path)
    assert "401" in document["paths"]["/fine-tuning/task"]["get"]["responses"]
    assert "401" not in document["paths"]["/health"]["get"]["responses"]


def test_validation_errors_are_declared_in_the_shape_they_have(app_client: TestClient) -> None:
    document = app_client.get("/openapi.json").json()
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            declared = operation["responses"].get("422")
            if declared is not None:
                schema = declared["content"]["application/json"]["schema"]
                assert "HTTPValidationError" not in str(schema), (method, path)
                if not path.startswith("/v1/"):  # /v1/ answers in OpenAI's error envelope
                    assert schema == {"$ref": "#/components/schemas/ErrorOut"}, (method, path)
