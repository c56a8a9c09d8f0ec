"""Schemathesis hooks (SCHEMATHESIS_HOOKS) for the contract test: valid data that the schema cannot tell apart.

An expiry must be in the future. JSON Schema has no way to say so, so generated bodies with an expiry
in the past (or within the next minute) are left out; the API's 422 for them is tested in test_endpoints.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import schemathesis

from litesubs.models import utcnow


@schemathesis.hook
def filter_case(_context: schemathesis.HookContext, case: schemathesis.Case) -> bool:
    """Every phase applies it (the coverage phase does not apply `filter_body`)."""
    body: Any = case.body
    expires_at = body.get("expires_at") if isinstance(body, dict) else None
    if not isinstance(expires_at, str):
        return True
    try:
        moment = datetime.fromisoformat(expires_at)
    except ValueError:
        return True  # not a date at all: the API refuses it, as it should
    return moment.tzinfo is None or moment > utcnow() + timedelta(minutes=1)
