"""Mail about purchases: the buyer's receipt and refund notice, the creator's "new sale".

Fulfilment calls these in the transaction that settles the purchase, and settles each purchase
once, so each mail is queued once however often Stripe delivers the event.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func
from sqlmodel import Session, select

from litesubs import routes
from litesubs.models import CreditLot, Customer, LedgerEntry, Pack, Purchase, User
from litesubs.services import mail
from litesubs.services.money import format_money


def purchase_paid(session: Session, purchase: Purchase, customer: Customer, *, now: datetime) -> None:
    """A purchase just paid and granted: a receipt to the buyer, and "new sale" to the creator if they want it."""
    buyer, creator = session.get(User, purchase.buyer_id), session.get(User, purchase.creator_id)
    pack = session.get(Pack, purchase.pack_id)
    details = _details(purchase, pack, when=purchase.paid_at or now)
    receipt = mail.render(
        "receipt",
        to=buyer.email,
        subject=f"Your receipt from {creator.name}: {pack.name}",
        name=buyer.name,
        creator_name=creator.name,
        balance=customer.balance,
        wallet_url=mail.link(routes.WALLET),
        **details,
    )
    mail.send_later(session, receipt, now=now)
    if creator.sale_mail:
        sale = mail.render(
            "new_sale",
            to=creator.email,
            subject=f"New sale: {pack.name} for {details['amount']}",
            name=creator.name,
            buyer_email=buyer.email,
            customer_url=mail.link(f"{routes.CUSTOMERS}/{customer.id}"),
            account_url=mail.link(routes.SETTINGS),
            **details,
        )
        mail.send_later(session, sale, now=now)


def purchase_refunded(session: Session, purchase: Purchase, customer: Customer, *, now: datetime) -> None:
    """A purchase just refunded: a notice to the buyer, with the credits it took back."""
    buyer, creator = session.get(User, purchase.buyer_id), session.get(User, purchase.creator_id)
    pack = session.get(Pack, purchase.pack_id)
    taken_back = session.exec(
        select(func.coalesce(func.sum(-LedgerEntry.delta), 0))
        .join(CreditLot, CreditLot.id == LedgerEntry.lot_id)
        .where(CreditLot.purchase_id == purchase.id, LedgerEntry.kind == "refund")
    ).one()
    notice = mail.render(
        "refund",
        to=buyer.email,
        subject=f"Refund from {creator.name}: {pack.name}",
        name=buyer.name,
        creator_name=creator.name,
        balance=customer.balance,
        credits_taken_back=int(taken_back),
        wallet_url=mail.link(routes.WALLET),
        **_details(purchase, pack, when=purchase.refunded_at or now),
    )
    mail.send_later(session, notice, now=now)


def mail_date(moment: datetime) -> str:
    """A time for a mail, which has no viewer's time zone: "2 December 2026, 14:05 UTC"."""
    return f"{moment.day} {moment:%B %Y, %H:%M} UTC"


def _details(purchase: Purchase, pack: Pack, *, when: datetime) -> dict[str, object]:
    return {
        "pack_name": pack.name,
        "credits": purchase.credits,
        "amount": format_money(purchase.amount, purchase.currency),
        "date": mail_date(when),
        "purchase_id": purchase.id,
    }
