"""Litesubs: prepaid credit packs for creators, paid with Stripe and spent over time."""
