"""Schemathesis against the app's OpenAPI schema: generated requests never get a 500."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.schemas import OpenApiSchema
from server_fixtures import replay_file

from spud.config import Settings
from spud.server.app import create_app
from spud.server.settings import ServerSettings
from spud.service.hub import Services

AUTH: dict[str, str] = {}
EXAMPLES = 12

pytestmark = pytest.mark.databases(scope="module")  # on SQLite and on PostgreSQL


@pytest.fixture(scope="module")
def api_schema(
    tmp_path_factory: pytest.TempPathFactory, module_db_url: str
) -> Iterator[OpenApiSchema]:
    tmp: Path = tmp_path_factory.mktemp("schema")
    model = replay_file(
        tmp / "agent.json", [{"calls": [{"name": "finish", "arguments": {"summary": "ok"}}]}]
    )
    settings = Settings(home=tmp / "home", model=model, db_url=module_db_url)
    services = Services(settings, approval_timeout_s=1)
    app = create_app(services, ServerSettings(max_body_bytes=100_000))
    admin = services.users.add_user("admin", "password-123", "org", "admin")
    AUTH["Authorization"] = f"Bearer {services.users.create_key(admin.user_id)[1]}"
    yield schemathesis.openapi.from_asgi("/openapi.json", app, headers=AUTH)
    services.close()


def test_no_generated_request_gets_a_server_error(api_schema: OpenApiSchema) -> None:
    """Every operation, a few generated requests each (valid and not); 5xx is a failure."""
    failures: list[str] = []
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 15

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
        def call(case: schemathesis.Case) -> None:
            response = case.call(headers=AUTH)
            if response.status_code >= 500:
                failures.append(f"{case.method} {case.formatted_path}: {response.text[:300]}")

        call()
    assert not failures, "\n".join(failures)
