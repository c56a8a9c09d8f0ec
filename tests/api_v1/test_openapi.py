"""The OpenAPI document describes what the API really does: schemathesis calls every operation with data
generated from `/api/v1/openapi.json` and checks each answer against it (no 500, documented statuses,
bodies and headers that match their schemas, refused invalid data, enforced authentication).
"""

from __future__ import annotations

from datetime import datetime, timedelta

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode

from litesubs.models import utcnow
from litesubs.services.customers import get_or_create_customer
from litesubs.services.ledger import Actor, grant
from tests.api_v1.conftest import API_PREFIX, Creator
from tests.conftest import create_user
from tests.factories import make_pack

OPERATIONS = [
    "GET /customers",
    "GET /customers/{ref}",
    "POST /customers/{ref}/debit",
    "POST /customers/{ref}/credit",
    "GET /customers/{ref}/transactions",
    "GET /packs",
    "GET /events",
]
EXAMPLES_PER_MODE = 40


def meets_rules_beyond_the_schema(case: schemathesis.Case) -> bool:
    """Valid data the schema cannot tell apart: cursors are valid only as the API handed them out (tested in
    test_endpoints), and an expiry must be in the future."""
    if (case.query or {}).get("cursor") is not None:
        return False
    expires_at = case.body.get("expires_at") if isinstance(case.body, dict) else None
    return not isinstance(expires_at, str) or datetime.fromisoformat(expires_at) > utcnow() + timedelta(minutes=1)


def api_key_auth(secret: str) -> type:
    """Schemathesis authenticates every generated call with the key, and knows to leave it out when checking auth."""

    class ApiKeyAuth:
        def get(self, _case: schemathesis.Case, _context: schemathesis.AuthContext) -> str:
            return secret

        def set(self, case: schemathesis.Case, data: str, _context: schemathesis.AuthContext) -> None:
            case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}

    return ApiKeyAuth


@pytest.fixture
def real_customer_email(creator: Creator) -> str:
    """A customer of the creator with plenty of credits (and a pack), so generated calls also succeed."""
    buyer = create_user(creator.engine, name="Generated Buyer")
    customer = get_or_create_customer(creator_id=creator.user.id, buyer_id=buyer.id, engine=creator.engine)
    actor = Actor("creator", creator.user.id)
    grant(creator_id=creator.user.id, customer_id=customer.id, amount=10**8, actor=actor, engine=creator.engine)
    make_pack(creator.engine, creator.user.id)
    return buyer.email


@pytest.mark.parametrize(
    ("label", "mode"),
    [
        (label, mode)
        for label in OPERATIONS
        for mode in GenerationMode
        if not (label == "GET /packs" and mode is GenerationMode.NEGATIVE)  # no parameters to get wrong
    ],
    ids=str,
)
def test_the_api_behaves_as_its_openapi_document_says(
    creator: Creator, real_customer_email: str, api_url: str, label: str, mode: GenerationMode
) -> None:
    """Valid data for unknown and real customers, and invalid data, each answered as documented."""
    schema = schemathesis.openapi.from_url(f"{api_url}{API_PREFIX}/openapi.json")
    schema.auth()(api_key_auth(creator.secret))
    operation = schema.find_operation_by_label(label)
    strategy = operation.as_strategy(mode)
    if "{ref}" in label:
        strategy |= operation.as_strategy(mode, path_parameters={"ref": real_customer_email})
    if mode is GenerationMode.POSITIVE:
        strategy = strategy.filter(meets_rules_beyond_the_schema)

    @given(case=strategy)
    @settings(
        max_examples=EXAMPLES_PER_MODE,
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def call_and_validate(case: schemathesis.Case) -> None:
        case.call_and_validate()

    call_and_validate()


def test_the_document_lists_every_operation_with_auth_and_error_responses(api_url: str) -> None:
    document = httpx.get(f"{api_url}{API_PREFIX}/openapi.json").json()
    operations = {
        (method.upper(), path): operation
        for path, methods in document["paths"].items()
        for method, operation in methods.items()
    }
    assert set(operations) == {
        ("GET", "/customers"),
        ("GET", "/customers/{ref}"),
        ("POST", "/customers/{ref}/debit"),
        ("POST", "/customers/{ref}/credit"),
        ("GET", "/customers/{ref}/transactions"),
        ("GET", "/packs"),
        ("GET", "/events"),
    }
    assert document["servers"] == [{"url": API_PREFIX}]
    assert document["components"]["securitySchemes"]["ApiKey"] == {
        "type": "http",
        "scheme": "bearer",
        "description": document["components"]["securitySchemes"]["ApiKey"]["description"],
    }
    error_ref = {"$ref": "#/components/schemas/ErrorBody"}
    for operation in operations.values():
        assert operation["security"] == [{"ApiKey": []}]
        assert {"401", "429"} <= set(operation["responses"])
        for status, response in operation["responses"].items():
            if status != "200":
                assert response["content"]["application/json"]["schema"] == error_ref
    debit = operations[("POST", "/customers/{ref}/debit")]
    assert {"200", "401", "403", "404", "409", "422", "429"} == set(debit["responses"])
    assert [p["name"] for p in debit["parameters"]] == ["ref", "Idempotency-Key"]
    assert "Idempotent-Replayed" in debit["responses"]["200"]["headers"]


def test_the_docs_page_and_its_assets_are_served_from_here(api_url: str) -> None:
    page = httpx.get(f"{api_url}{API_PREFIX}/docs")
    assert page.status_code == 200
    assert f"url: '{API_PREFIX}/openapi.json'" in page.text
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css", "favicon.png"):
        assert f"{API_PREFIX}/docs-assets/{asset}" in page.text
        assert httpx.get(f"{api_url}{API_PREFIX}/docs-assets/{asset}").status_code == 200
    assert "cdn" not in page.text.lower()
