"""Fetch one row by primary key, or tell the user it is not there."""

from typing import TypeVar

from sqlalchemy.orm import Session

from backend.errors import StudioError

Row = TypeVar("Row")


def get_or_raise(session: Session, table: type[Row], id_: object, what: str | None = None, *,
                 message: str | None = None) -> Row:
    """The ``table`` row with primary key ``id_``.

    Raises:
        StudioError: no such row — "There is no {what} {id_}." or, when given, ``message``.
    """
    row = session.get(table, id_)
    if row is None:
        raise StudioError(message or f"There is no {what or table.__name__} {id_}.")
    return row
