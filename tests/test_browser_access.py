"""Who can open what, in headless chromium against a real server (issue 14, "Exposure and accounts").

Every page URL is opened directly, as a signed-out visitor and as an annotator who signs in on that URL: neither
ever sees an admin page (the visitor gets the sign-in page, the annotator the Labeling page). An admin demoted
while an admin page is open gets no more action from it and lands on Labeling. Campaign guidelines carrying a
remote image and links render with no image and no link. Screenshots land in ``test-artifacts/access-*.png``.
"""

import pytest
from browser_support import ADMIN, ADMIN_PASSWORD, open_page, screenshot, settle, sign_in

pytestmark = pytest.mark.browser
PASSWORD = "annotator-password"
ADMIN_PAGES = {"playground": "Playground", "compare": "Compare", "documents": "Documents", "runs": "Runs",
               "campaigns": "Campaigns", "agreement": "Agreement", "leaderboard": "Leaderboard",
               "preference-data": "Preference data",
               "accounts": "Accounts", "jobs": "Jobs", "evaluation": "Evaluation", "rlhf": "RLHF runs",
               "models": "Models & adapters", "calculators": "Calculators"}
EVIL = ("Rank kindly. ![pixel](https://evil.example/pixel.png?who=annotator) [details](https://evil.example/x) "
        "and https://evil.example/bare")


@pytest.fixture(scope="module")
def seeded(browser_studio):
    """An admin, an annotator, a second admin to demote, and an open campaign with hostile guidelines."""
    from backend.db.engine import session_scope
    from labeling import accounts, campaigns, synthetic

    url = browser_studio.db_url
    with session_scope(write=True, url=url) as s:
        admin = accounts.sign_up(s, ADMIN, ADMIN_PASSWORD).id
        accounts.sign_up(s, "bob", PASSWORD)
        carl = accounts.create_user(s, admin, "carl", PASSWORD, "admin").id
        cid = synthetic.seed_campaign(s, "hostile", n_items=3, k=2).id
        campaigns.update_campaign(s, cid, guidelines=EVIL)
    return {"studio": browser_studio, "admin": admin, "carl": carl, "campaign": cid}


def _heading(tab, title: str):
    return tab.get_by_test_id("stMain").get_by_role("heading", name=title)


def _open(studio, path: str):
    tab = studio.new_tab()
    tab.goto(f"{studio.url}/{path}", wait_until="domcontentloaded")
    tab.get_by_test_id("stMain").get_by_role("heading").first.wait_for()
    settle(tab)
    dialog = tab.get_by_role("dialog")  # Streamlit's "Page not found": the URL is not among this user's pages
    if dialog.count():
        tab.keyboard.press("Escape")
        dialog.wait_for(state="detached")
        settle(tab)
    return tab


def test_signed_out_visitor_gets_the_sign_in_page_on_every_url(seeded):
    studio = seeded["studio"]
    for path, title in {**ADMIN_PAGES, "labeling": "Labeling"}.items():
        tab = _open(studio, path)
        _heading(tab, "Sign in to Loop Studio").wait_for()
        assert _heading(tab, title).count() == 0, path
        assert tab.get_by_test_id("stSidebarNav").get_by_role("link", name=title).count() == 0
        tab.context.close()


def test_annotator_signing_in_on_an_admin_url_gets_labeling(seeded):
    studio = seeded["studio"]
    for path, title in ADMIN_PAGES.items():
        tab = _open(studio, path)
        sign_in(tab, "bob", PASSWORD)
        _heading(tab, "Labeling").wait_for()
        assert _heading(tab, title).count() == 0, path
        nav = tab.get_by_test_id("stSidebarNav")
        assert nav.get_by_role("link").count() in (0, 1)  # a single page: Streamlit may hide the menu
        assert nav.get_by_role("link", name=title).count() == 0
        if path == "jobs":
            screenshot(tab, "access-annotator-on-jobs-url")
        tab.context.close()


def test_guidelines_show_no_remote_image_and_no_link(seeded):
    tab = _open(seeded["studio"], "labeling")
    sign_in(tab, "bob", PASSWORD)
    main = tab.get_by_test_id("stMain")
    main.get_by_text("Rank kindly.").wait_for()
    assert main.locator("img[src*='evil.example']").count() == 0
    assert main.locator("a[href*='evil.example']").count() == 0
    assert main.get_by_text("pixel", exact=False).count() >= 1  # shown as text
    screenshot(tab, "access-guidelines")
    tab.context.close()


def test_demoted_admin_tab_gets_no_more_action(seeded):
    from backend.db.engine import session_scope
    from labeling import accounts, campaigns

    studio = seeded["studio"]
    tab = _open(studio, "")
    sign_in(tab, "carl", PASSWORD)
    open_page(tab, "Campaigns")
    close = tab.get_by_role("button", name="Close", exact=True)
    close.wait_for()
    with session_scope(write=True, url=studio.db_url) as s:
        accounts.set_role(s, seeded["admin"], seeded["carl"], "annotator")
    if close.count():  # the page's live panel may have noticed the demotion already
        close.click(timeout=5_000, no_wait_after=True)
    _heading(tab, "Labeling").wait_for()  # the role was re-read: back to the annotator's page
    settle(tab)
    assert _heading(tab, "Campaigns").count() == 0
    with session_scope(url=studio.db_url) as s:
        assert campaigns.find_campaign(s, seeded["campaign"]).status == "open"
    tab.context.close()
