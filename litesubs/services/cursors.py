"""Page cursors: where the previous page ended (a row id), as a token callers pass back unchanged.

A cursor is a whole number from 1 to 9,999,999,999 written in decimal (CURSOR_PATTERN): the API's OpenAPI
document can then say exactly which values are valid, and every value of that shape is (a position in
the list: the page holds what comes after it). Callers should still treat it as opaque,
taking `next_cursor` from one page and giving it back for the next.
"""

from __future__ import annotations

import re

from litesubs.services.errors import InvalidRequest

CURSOR_PATTERN = r"^[1-9][0-9]{0,9}$"
_CURSOR = re.compile(CURSOR_PATTERN)
# Row ids are INTEGER primary keys: a position beyond the largest one means the same as the largest one.
_LARGEST_ROW_ID = 2**31 - 1


def encode_cursor(row_id: int) -> str:
    return str(row_id)


def decode_cursor(cursor: str) -> int:
    """The row id in `cursor`; `InvalidRequest` (field `cursor`) for anything else."""
    if not isinstance(cursor, str) or not _CURSOR.fullmatch(cursor):
        raise InvalidRequest("cursor", "This cursor is not valid; start again without one.")
    return min(int(cursor), _LARGEST_ROW_ID)
