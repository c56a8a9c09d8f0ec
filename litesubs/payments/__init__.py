"""Payments: the Stripe gateway, the in-app test-mode gateway and fulfilment."""
