"""The OpenAPI document: served at /docs, every field of every body described."""

from __future__ import annotations

from fastapi.testclient import TestClient

FRAMEWORK_SCHEMAS = {"HTTPValidationError", "ValidationError"}


def test_docs_and_descriptions(client: TestClient) -> None:
    assert client.get("/docs").status_code == 200
    spec = client.get("/openapi.json").json()
    missing = [
        f"{name}.{prop}"
        for name, schema in spec["components"]["schemas"].items()
        if name not in FRAMEWORK_SCHEMAS
        for prop, body in schema.get("properties", {}).items()
        if "description" not in body
    ]
    assert missing == []
    assert {"HTTPBearer", "APIKeyCookie"} <= set(spec["components"]["securitySchemes"])
    # Request bodies refuse unknown fields.
    assert spec["components"]["schemas"]["Camera"]["additionalProperties"] is False
