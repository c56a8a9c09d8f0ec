"""The Reflex app: pages and the mounted HTTP API, nothing else."""

import reflex as rx

from litesubs.api.app import create_api
from litesubs.pages.landing import landing
from litesubs.startup import migrate_on_start, settings_or_exit

settings_or_exit()

app = rx.App(
    stylesheets=["/styles.css"],
    api_transformer=create_api(),
)
app.register_lifespan_task(migrate_on_start)
app.add_page(landing, route="/", title="Litesubs — sell prepaid credit packs")
