"""Cross-origin answers of the production build: the site's own origin with cookies, API v1 open without them."""

from __future__ import annotations

import httpx

from tests.app_server import AppServer

EVIL = "https://evil.example"


def test_other_origins_may_not_read_answers_with_the_visitors_cookies(app_server: AppServer) -> None:
    for path in ("/api/health", "/api/exports/customers.csv", "/ping"):
        response = httpx.get(f"{app_server.base_url}{path}", headers={"Origin": EVIL})
        assert response.headers.get("access-control-allow-origin") not in (EVIL, "*"), path
        preflight = httpx.options(
            f"{app_server.base_url}{path}", headers={"Origin": EVIL, "Access-Control-Request-Method": "GET"}
        )
        assert preflight.headers.get("access-control-allow-origin") not in (EVIL, "*"), path


def test_the_sites_own_origin_may_use_credentials(app_server: AppServer) -> None:
    response = httpx.get(f"{app_server.base_url}/api/health", headers={"Origin": app_server.base_url})
    assert response.headers["access-control-allow-origin"] == app_server.base_url
    assert response.headers["access-control-allow-credentials"] == "true"


def test_api_v1_is_open_to_any_origin_without_credentials(app_server: AppServer) -> None:
    preflight = httpx.options(
        f"{app_server.base_url}/api/v1/packs",
        headers={
            "Origin": EVIL,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, idempotency-key",
        },
    )
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == "*"
    assert "Idempotency-Key" in preflight.headers["access-control-allow-headers"]
    assert "access-control-allow-credentials" not in preflight.headers

    response = httpx.get(f"{app_server.base_url}/api/v1/packs", headers={"Origin": EVIL})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"
    assert response.headers["access-control-allow-origin"] == "*"
    assert "access-control-allow-credentials" not in response.headers
    assert "Retry-After" in response.headers["access-control-expose-headers"]
