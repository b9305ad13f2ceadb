"""Quality checks on the pages: mark a gold item and its rate on the Campaigns page; gold accuracy and "too fast"
on the Agreement page."""

from page_support import button, open_as, signed_in, texts
from sqlalchemy import select

from backend.db.engine import session_scope
from backend.db.tables import Campaign, CampaignItem
from labeling import synthetic, workbench


def test_campaigns_page_marks_a_gold_item_and_sets_the_rate(studio):
    ada = signed_in("ada")
    with session_scope(write=True) as s:
        cid = synthetic.seed_campaign(s, "checks", n_items=4, k=3).id
    at = open_as("page_campaigns.py", ada)
    assert not at.exception
    rate = next(n for n in at.number_input if n.label == "Gold items per 100 served")
    rate.set_value(20)
    next(b for b in at.button if b.label == "Save checks").click().run()
    assert not at.exception and "Checks saved." in texts(at.success)
    with session_scope() as s:
        first = s.scalars(select(CampaignItem).where(CampaignItem.campaign_id == cid).order_by(CampaignItem.id)).first()
        chosen = first.completions[1].id
    best = next(r for r in at.radio if r.label == "Known best completion")
    assert best.options[1].startswith("Answer 1")  # the completion's text and source, shortened
    best.set_value(chosen).run()
    button(at, "Mark as gold").click().run()
    assert not at.exception and not at.error
    with session_scope() as s:
        campaign = s.get(Campaign, cid)
        item = s.scalars(select(CampaignItem).where(CampaignItem.campaign_id == cid).order_by(CampaignItem.id)).first()
        assert campaign.gold_rate == 0.2 and item.gold_completion_id is not None
        assert item.gold_completion_id == chosen
    button(at, "Make ordinary").click().run()
    with session_scope() as s:
        assert s.scalars(select(CampaignItem.gold_completion_id).where(CampaignItem.campaign_id == cid)).all() == \
            [None] * 4


def test_agreement_page_shows_gold_accuracy_and_flags_the_annotator(studio):
    from labeling import gold

    ada = signed_in("ada")
    with session_scope(write=True) as s:
        campaign = synthetic.seed_campaign(s, "acc", n_items=8, k=3, overlap=2)
        items = list(s.scalars(select(CampaignItem).where(CampaignItem.campaign_id == campaign.id)
                               .order_by(CampaignItem.id)))
        best = {}
        for item in items[:4]:
            best[item.id] = item.completions[0].id
            gold.mark_gold(s, item.id, best[item.id])
        gold.set_checks(s, campaign.id, gold_rate=0.5)
    for name, right in (("good", True), ("bad", False)):
        with session_scope(write=True) as s:
            user = workbench.get_or_create_user(s, name).id
        while True:
            with session_scope(write=True) as s:
                task = workbench.next_task(s, campaign.id, user)
                if task is None:
                    break
                ids = [c["id"] for c in task.completions]
                top = best.get(task.item_id, ids[0]) if right else next(i for i in ids if i != best.get(task.item_id))
                rest = [i for i in ids if i != top]
                workbench.submit_ranking(s, task.item_id, user, {top: 1, rest[0]: 2, rest[1]: 3},
                                         seconds_spent=30.0 if right else 1.0)
    at = open_as("page_label_quality.py", ada)
    assert not at.exception
    assert "**bad** picked the known best on 0% of 3 gold items" in texts(at.warning)
    table = at.dataframe[-1].value
    rows = {r["annotator"]: r for r in table.to_dict("records")}
    assert rows["good"]["gold accuracy"].startswith("100%") and rows["good"]["flagged"] == ""
    assert rows["bad"]["flagged"] == "below threshold" and rows["bad"]["too fast"] == 7
