"""The dashboard at scale: customer-table queries, overview numbers, and the customers page in Chromium."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from playwright.sync_api import sync_playwright
from sqlalchemy import Engine

from bench.scale import ScaleData
from bench.timing import Timing, summarize, time_it
from litesubs.services import accounts
from litesubs.services.customer_directory import list_customers
from litesubs.services.overview import creator_overview
from tests.app_server import start_app_server
from tests.browser import CHROMIUM, CHROMIUM_ARGS


def query_timings(engine: Engine, data: ScaleData) -> list[Timing]:
    creator = data.creator_id
    deep_page = data.customers // 25 - 1
    return [
        time_it("customers: first page", lambda: list_customers(creator_id=creator, engine=engine)),
        time_it(
            "customers: search email fragment",
            lambda: list_customers(creator_id=creator, search="hopper.7", engine=engine),
        ),
        time_it(
            "customers: sort by balance",
            lambda: list_customers(creator_id=creator, sort="balance", engine=engine),
        ),
        time_it(
            f"customers: deep page ({deep_page})",
            lambda: list_customers(creator_id=creator, page=deep_page, engine=engine),
        ),
        time_it("overview numbers", lambda: creator_overview(creator_id=creator, engine=engine), runs=10),
    ]


def customers_page_in_chromium(database_url: str, engine: Engine, data: ScaleData, *, runs: int = 5) -> Timing:
    """From navigation to the first table row on screen, signed in as the big creator."""
    token = accounts.start_session(user_id=data.creator_id, engine=engine)
    with tempfile.TemporaryDirectory() as work_dir:
        server = start_app_server(database_url, Path(work_dir) / "server.log", Path(work_dir))
        try:
            samples = _page_samples(server.base_url, token, runs)
        finally:
            server.stop()
    return summarize("customers page in Chromium (to first row)", samples)


def _page_samples(base_url: str, token: str, runs: int) -> list[float]:
    samples = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(base_url=base_url)
        context.add_cookies([{"name": accounts.SESSION_COOKIE, "value": token, "url": base_url}])
        page = context.new_page()
        page.goto("/dashboard")  # warm: assets cached, websocket code compiled
        page.get_by_text("Revenue").first.wait_for()
        for _ in range(runs):
            started = time.perf_counter()
            page.goto("/dashboard/customers")
            page.get_by_role("row").nth(1).wait_for()
            samples.append((time.perf_counter() - started) * 1000)
            page.goto("about:blank")
        browser.close()
    return samples
