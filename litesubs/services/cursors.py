"""Opaque page cursors: where the previous page ended (a row id), in a form callers do not parse."""

from __future__ import annotations

import base64
import binascii

from litesubs.services.errors import InvalidRequest


def encode_cursor(row_id: int) -> str:
    return base64.urlsafe_b64encode(str(row_id).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    """The row id in `cursor`; `InvalidRequest` (field `cursor`) for anything we did not make."""
    try:
        row_id = int(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode())
    except (binascii.Error, UnicodeDecodeError, ValueError, TypeError):
        row_id = 0
    if row_id <= 0:
        raise InvalidRequest("cursor", "This cursor is not valid; start again without one.")
    return row_id
