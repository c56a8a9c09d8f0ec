import reflex as rx

from litesubs.api.cors import origin_of
from litesubs.startup import settings_or_exit

settings = settings_or_exit()

config = rx.Config(
    app_name="litesubs",
    telemetry_enabled=False,
    show_built_with_reflex=False,
    # With REDIS_URL, Reflex keeps state in Redis and runs several backend workers (GRANIAN_WORKERS).
    redis_url=settings.redis_url,
    # Only the site itself may read answers with the visitor's cookies (API v1 is open: litesubs/api/cors.py).
    cors_allowed_origins=[origin_of(settings.base_url)],
    # Behind reverse proxies, the client is the address the outermost trusted one saw (X-Forwarded-For).
    trusted_proxy_hops=settings.trusted_proxies,
    plugins=[
        rx.plugins.RadixThemesPlugin(
            theme=rx.theme(accent_color="violet", gray_color="slate", radius="large", scaling="100%"),
        ),
        rx.plugins.TailwindV4Plugin(),
        rx.plugins.SitemapPlugin(),
    ],
)
