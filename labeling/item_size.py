"""How many completions an item has: the campaign's K for generated items, its own number for imported ones.

K is the default for generated items, not a rule for imported ones. Rankings imported from elsewhere bring
2–9 completions per row, written together with the ranking in one savepoint, so an item whose completions
were imported (``source_label`` ``imported``) is complete as imported, whatever the campaign's K: the
workbench serves it with its own completions and generation never adds any (its rankings cover exactly the
completions it has). Pairs, agreement and export already work per item (``labeling.records``).
"""

from sqlalchemy import case, exists, func, or_, select

from backend.db.tables import CampaignItem, Completion

IMPORTED = "imported"


def imported_item():
    """SQL condition on ``CampaignItem``: its completions were imported (so it is complete as it is)."""
    return exists().where(Completion.item_id == CampaignItem.id, Completion.source_label == IMPORTED)


def item_is_complete(k: int):
    """SQL condition on ``CampaignItem``: it has all its completions (K of them, or imported ones)."""
    made = (select(func.count(Completion.id)).where(Completion.item_id == CampaignItem.id)
            .correlate(CampaignItem).scalar_subquery())
    return or_(made >= k, imported_item())


def any_imported():
    """Aggregate over an item's completions (in a ``GROUP BY Completion.item_id``): 1 when any was imported."""
    return func.max(case((Completion.source_label == IMPORTED, 1), else_=0))


def complete_group(k: int):
    """``HAVING`` condition of a ``GROUP BY Completion.item_id``: the item has all its completions."""
    return or_(func.count(Completion.id) >= k, any_imported() == 1)
