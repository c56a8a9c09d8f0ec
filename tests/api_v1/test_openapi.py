"""The OpenAPI document describes what the API really does: schemathesis calls every operation with data
generated from `/api/v1/openapi.json` and checks each answer against it (no 500, documented statuses,
bodies and headers that match their schemas, accepted valid data, refused invalid data, enforced
authentication), and follows the document's links from operation to operation.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from schemathesis.core.warnings import SchemathesisWarning

from litesubs.services import holds
from litesubs.services.customers import get_or_create_customer
from litesubs.services.ledger import Actor, grant
from litesubs.settings import REPO_ROOT
from tests.api_v1.conftest import API_PREFIX, Creator, a_client_address
from tests.conftest import create_user
from tests.factories import make_pack
from tests.invariants import assert_invariants
from tests.ledger_factories import entries_of

WARNINGS = {warning.value for warning in SchemathesisWarning} - {SchemathesisWarning.MISSING_TEST_DATA.value}
MAX_EXAMPLES = 30  # per operation and phase: about 550 requests, some 20 seconds per database
SEED = 20261202


@pytest.fixture
def real_customer(creator: Creator) -> int:
    """A customer of the creator with plenty of credits, an active hold (and a pack), which the stateful phase
    reaches by links."""
    buyer = create_user(creator.engine, name="Generated Buyer")
    customer = get_or_create_customer(creator_id=creator.user.id, buyer_id=buyer.id, engine=creator.engine)
    actor = Actor("creator", creator.user.id)
    grant(creator_id=creator.user.id, customer_id=customer.id, amount=10**8, actor=actor, engine=creator.engine)
    holds.place_hold(
        creator_id=creator.user.id, customer_id=customer.id, amount=10**6, actor=actor, engine=creator.engine
    )
    make_pack(creator.engine, creator.user.id)
    return customer.id


def test_schemathesis_finds_nothing_with_every_check_in_every_phase(
    creator: Creator, real_customer: int, api_url: str, tmp_path: Path
) -> None:
    """Schemathesis's own runner, as a CI job would call it: every check; the examples, coverage and fuzzing
    phases on each operation (valid and invalid data), and the stateful phase following the document's links
    from the customer list to one customer and the changes of its credits. Failed authentications are part
    of the checks, so the calls come from a client address of their own (the served API trusts one proxy).
    """
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "st"),
            "run",
            f"{api_url}{API_PREFIX}/openapi.json",
            "--checks",
            "all",
            "--phases",
            "examples,coverage,fuzzing,stateful",
            "--max-examples",
            str(MAX_EXAMPLES),
            # One fixed seed: the same requests every run, so whether the stateful phase reaches the real customer
            # does not depend on chance (it did not, once in CI, with a random seed).
            "--seed",
            str(SEED),
            # Every warning but "missing test data": ids generated outside the stateful phase name no customer or
            # hold of this creator, so those operations answer 404 as documented; the links reach the real ones.
            "--warnings",
            ",".join(sorted(WARNINGS)),
            "--header",
            f"Authorization: Bearer {creator.secret}",
            "--header",
            f"X-Forwarded-For: {a_client_address()}",
            "--report",
            "ndjson",
            "--report-dir",
            str(tmp_path),
        ],
        env={
            **os.environ,
            "SCHEMATHESIS_HOOKS": "tests.api_v1.schemathesis_hooks",
            "PYTHONPATH": str(REPO_ROOT),
            "NO_COLOR": "1",
        },
        cwd=tmp_path,  # schemathesis keeps its replay files in the working directory
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )

    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-2000:]
    assert "No issues found" in result.stdout, result.stdout[-6000:]
    for phase in ("Examples", "Coverage", "Fuzzing", "Stateful"):
        assert f"✅ {phase}" in result.stdout, result.stdout[-3000:]
    # The stateful phase reached the real customer by following links, and the API key changed its credits.
    assert _stateful_successes(tmp_path, f"{API_PREFIX}/customers/{real_customer}/debit")
    changes = entries_of(creator.engine, real_customer)
    assert any(entry.actor_type == "api_key" for entry in changes)
    assert_invariants(creator.engine, real_customer)


def _stateful_successes(report_dir: Path, path: str) -> int:
    """How many requests of schemathesis's stateful phase (its ndjson report) to `path` answered 2xx."""
    successes = 0
    for report in report_dir.glob("*.ndjson"):
        for line in report.read_text().splitlines():
            finished = json.loads(line).get("ScenarioFinished")
            if not finished or finished.get("phase") != "stateful":
                continue
            for interaction in finished["recorder"].get("interactions", {}).values():
                request, response = interaction.get("request") or {}, interaction.get("response") or {}
                if urlsplit(request.get("uri", "")).path == path and 200 <= response.get("status_code", 0) < 300:
                    successes += 1
    return successes


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
        ("POST", "/customers/{ref}/holds"),
        ("GET", "/customers/{ref}/holds"),
        ("GET", "/holds/{hold_id}"),
        ("POST", "/holds/{hold_id}/capture"),
        ("POST", "/holds/{hold_id}/release"),
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
            if status not in {"200", "201"}:
                assert response["content"]["application/json"]["schema"] == error_ref
    for operation in (operations[("GET", "/customers")], operations[("GET", "/customers/{ref}/transactions")]):
        [cursor] = [p for p in operation["parameters"] if p["name"] == "cursor"]
        assert cursor["schema"]["anyOf"][0]["pattern"] == "^[1-9][0-9]{0,9}$"
        assert "Opaque" in cursor["description"]
    links = operations[("GET", "/customers")]["responses"]["200"]["links"]
    assert links["debit_customer"] == {
        "operationId": "debit_customer",
        "parameters": {"ref": "$response.body#/data/0/id"},
    }
    debit = operations[("POST", "/customers/{ref}/debit")]
    assert {"200", "401", "403", "404", "409", "422", "429"} == set(debit["responses"])
    assert [p["name"] for p in debit["parameters"]] == ["ref", "Idempotency-Key"]
    assert "Idempotent-Replayed" in debit["responses"]["200"]["headers"]
    hold = operations[("POST", "/customers/{ref}/holds")]
    assert {"201", "401", "403", "404", "409", "422", "429"} == set(hold["responses"])
    assert "Idempotent-Replayed" in hold["responses"]["201"]["headers"]
    for ending in ("capture", "release"):
        responses = operations[("POST", f"/holds/{{hold_id}}/{ending}")]["responses"]
        assert {"200", "401", "404", "409", "422", "429"} == set(responses)
        assert "hold_closed" in responses["409"]["description"]
        assert "hold" in responses["404"]["description"]
    capture = operations[("POST", "/holds/{hold_id}/capture")]
    assert "hold_exceeded" in capture["responses"]["409"]["description"]
    assert [p["name"] for p in capture["parameters"]] == ["hold_id", "Idempotency-Key"]
    hold_schema = document["components"]["schemas"]["HoldPublic"]["properties"]
    assert hold_schema["status"]["enum"] == ["active", "captured", "released", "expired"]
    assert "held" in document["components"]["schemas"]["CustomerDetail"]["properties"]


def test_the_docs_page_and_its_assets_are_served_from_here(api_url: str) -> None:
    page = httpx.get(f"{api_url}{API_PREFIX}/docs")
    assert page.status_code == 200
    assert f"url: '{API_PREFIX}/openapi.json'" in page.text
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css", "favicon.png"):
        assert f"{API_PREFIX}/docs-assets/{asset}" in page.text
        assert httpx.get(f"{api_url}{API_PREFIX}/docs-assets/{asset}").status_code == 200
    assert "cdn" not in page.text.lower()
