"""The production build starts on a fresh database, answers health checks and renders `/`."""

from __future__ import annotations

import httpx
from playwright.sync_api import Page, expect

from tests.app_server import AppServer
from tests.conftest import ARTIFACTS


def test_health_reports_the_database(app_server: AppServer) -> None:
    response = httpx.get(f"{app_server.base_url}/api/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "redis": "not_configured"}


def test_landing_page_renders_without_console_errors(page: Page) -> None:
    page.goto("/")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Sell credit packs")
    expect(page.get_by_role("link", name="Get started")).to_be_visible()
    page.screenshot(path=ARTIFACTS / "landing-desktop.png", full_page=True)
