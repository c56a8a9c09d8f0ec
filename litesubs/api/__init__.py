"""HTTP doors into the services: health, API v1, Stripe webhook."""
