import reflex as rx

from litesubs.startup import settings_or_exit

settings = settings_or_exit()

config = rx.Config(
    app_name="litesubs",
    telemetry_enabled=False,
    show_built_with_reflex=False,
    # With REDIS_URL, Reflex keeps state in Redis and runs several backend workers (GRANIAN_WORKERS).
    redis_url=settings.redis_url,
    plugins=[
        rx.plugins.RadixThemesPlugin(
            theme=rx.theme(accent_color="violet", gray_color="slate", radius="large", scaling="100%"),
        ),
        rx.plugins.TailwindV4Plugin(),
        rx.plugins.SitemapPlugin(),
    ],
)
