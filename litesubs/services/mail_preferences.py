"""The mail a creator chooses to send: "new sale" to themselves, low-balance notices to their buyers."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine

from litesubs.db import read_session, write_session
from litesubs.models import User
from litesubs.services import webhooks
from litesubs.services.errors import NotFound


@dataclass(frozen=True)
class MailPreferences:
    sale_mail: bool
    low_balance_mail: bool
    # The `credits.low` threshold (set with the webhooks) that the low-balance mail shares; None: never sent.
    low_balance_threshold: int | None


def preferences(*, user_id: int, engine: Engine | None = None) -> MailPreferences:
    with read_session(engine) as session:
        user = session.get(User, user_id)
    if user is None:
        raise NotFound()
    return MailPreferences(
        sale_mail=user.sale_mail,
        low_balance_mail=user.low_balance_mail,
        low_balance_threshold=webhooks.low_balance_threshold(creator_id=user_id, engine=engine),
    )


def set_preferences(
    *, user_id: int, sale_mail: bool, low_balance_mail: bool, engine: Engine | None = None
) -> MailPreferences:
    with write_session(engine) as session:
        user = session.get(User, user_id)
        if user is None:
            raise NotFound()
        user.sale_mail, user.low_balance_mail = bool(sale_mail), bool(low_balance_mail)
        session.add(user)
    return preferences(user_id=user_id, engine=engine)
