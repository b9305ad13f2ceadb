"""Exposure and accounts (issue 14): loopback by default, the setup token, self sign-up off when exposed,
`studio users create-admin`, admin actions that re-check the role, and untrusted text shown inert."""

import sys
import tomllib
from pathlib import Path

import pytest
from factories import run_cli
from page_support import button, count, open_as, page, signed_in, texts
from sqlalchemy import select
from streamlit import config as st_config

from backend.db.engine import session_scope
from backend.db.tables import Campaign, Job, User
from backend.errors import StudioError
from backend.settings import is_loopback
from cli.main import main
from labeling import accounts, campaigns, synthetic
from services import admin_actions

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def fast_hash(monkeypatch):
    monkeypatch.setattr(accounts, "ITERATIONS", 1000)


@pytest.fixture
def exposed_server():
    """The AppTest server as if started with ``--server.address 0.0.0.0``."""
    before = st_config.get_option("server.address")
    st_config.set_option("server.address", "0.0.0.0")
    yield
    st_config.set_option("server.address", before)


# --- listening address ----------------------------------------------------------------------------

def test_config_file_listens_on_loopback():
    config = tomllib.loads((REPO / ".streamlit" / "config.toml").read_text())
    assert config["server"]["address"] == "127.0.0.1"


@pytest.mark.parametrize(("host", "loopback"), [("127.0.0.1", True), ("127.0.1.1", True), ("localhost", True),
                                                ("::1", True), ("0.0.0.0", False), ("", False), (None, False),
                                                ("192.168.1.20", False), ("::", False)])
def test_is_loopback(host, loopback):
    assert is_loopback(host) is loopback


def _captured_run(monkeypatch, tmp_path, args):
    """`studio run …` from another directory, with the server launch captured instead of started."""
    from cli import serve

    calls = []
    monkeypatch.setattr(serve.os, "execve", lambda path, cmd, env: calls.append((path, cmd, env)))
    monkeypatch.chdir(tmp_path)  # not the repository: Streamlit would not find .streamlit/config.toml here
    main(["run", *args])
    (path, cmd, env), = calls
    assert path == cmd[0] == sys.executable
    flags = dict(zip(cmd[5::2], cmd[6::2], strict=False))
    return cmd, flags, env


def test_studio_run_passes_loopback_and_the_config_file_as_flags(studio_env, monkeypatch, tmp_path, capsys):
    monkeypatch.delenv("STUDIO_HOST", raising=False)
    cmd, flags, env = _captured_run(monkeypatch, tmp_path, [])
    assert cmd[1:4] == ["-m", "streamlit", "run"] and cmd[4].endswith("app/server.py")
    assert flags["--server.address"] == "127.0.0.1" and flags["--server.port"] == "8501"
    assert flags["--server.fileWatcherType"] == "none" and flags["--client.showErrorDetails"] == "none"
    assert flags["--browser.gatherUsageStats"] == "false" and flags["--server.headless"] == "true"
    assert cmd.count("--server.address") == 1
    assert "STUDIO_SETUP_TOKEN" not in env and "setup token" not in capsys.readouterr().err


def test_studio_run_host_exposes_with_a_printed_setup_token(studio_env, monkeypatch, tmp_path, capsys):
    _, flags, env = _captured_run(monkeypatch, tmp_path, ["--host", "0.0.0.0", "--port", "9000"])
    assert flags["--server.address"] == "0.0.0.0" and flags["--server.port"] == "9000"
    token = env["STUDIO_SETUP_TOKEN"]
    assert len(token) >= 24 and token in capsys.readouterr().err
    monkeypatch.setenv("STUDIO_HOST", "0.0.0.0")  # the setting does the same
    from backend.settings import reset_settings_cache

    reset_settings_cache()
    _, flags, _ = _captured_run(monkeypatch, tmp_path, [])
    assert flags["--server.address"] == "0.0.0.0"


# --- user names -----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["ada", "José Díaz", "o'neil", "bob_2", "a.b-c@lab", "名前"])
def test_safe_names_are_accepted(name):
    assert accounts.name_problem(name) is None


@pytest.mark.parametrize("name", ["![x](http://e/p.png)", "[click](http://e)", "<img src=x>", "a\nb", "a\tb",
                                  "**bold**", "`code`", "_lead", "x" * 81, "", "#1", "a|b"])
def test_unsafe_names_are_refused_with_a_clear_message(studio_env, fast_hash, name):
    with pytest.raises(StudioError, match="(?i)user name"), session_scope(write=True) as s:
        accounts.sign_up(s, name, "correct horse")
    assert count(User) == 0


def test_admin_cannot_create_an_unsafe_name_either(studio_env, fast_hash):
    with session_scope(write=True) as s:
        admin = accounts.sign_up(s, "ada", "correct horse").id
    with pytest.raises(StudioError, match="may hold only letters"), session_scope(write=True) as s:
        accounts.create_user(s, admin, "![p](http://e/p.png)", "correct horse")
    assert count(User) == 1


# --- first admin and self sign-up -----------------------------------------------------------------

def test_exposed_first_admin_needs_the_setup_token(studio_env, fast_hash):
    for token in (None, "", "wrong-token"):
        with pytest.raises(StudioError, match="setup token"), session_scope(write=True) as s:
            accounts.sign_up(s, "mallory", "correct horse", exposed=True, token=token)
    assert count(User) == 0
    with session_scope(write=True) as s:
        assert accounts.sign_up(s, "ada", "correct horse", exposed=True, token=accounts.setup_token()).role == "admin"
    with pytest.raises(StudioError, match="Self sign-up is off"), session_scope(write=True) as s:
        accounts.sign_up(s, "bob", "correct horse", exposed=True, token=accounts.setup_token())
    assert count(User) == 1


def test_self_sign_up_is_an_admin_choice(studio_env, fast_hash):
    with session_scope(write=True) as s:
        ada = accounts.sign_up(s, "ada", "correct horse").id  # loopback: no token needed
        bob = accounts.sign_up(s, "bob", "correct horse").id  # loopback: sign-up open by default
    assert accounts.self_signup_open(exposed=False) and not accounts.self_signup_open(exposed=True)
    with pytest.raises(StudioError, match="Only an admin"), session_scope() as s:
        accounts.set_self_signup(s, bob, True)
    with session_scope() as s:
        accounts.set_self_signup(s, ada, True)
    assert accounts.self_signup_open(exposed=True)
    with session_scope(write=True) as s:
        assert accounts.sign_up(s, "carol", "correct horse", exposed=True).role == "annotator"
    with session_scope() as s:
        accounts.set_self_signup(s, ada, False)
    with pytest.raises(StudioError, match="Self sign-up is off"), session_scope(write=True) as s:
        accounts.sign_up(s, "dave", "correct horse")  # off on loopback too, once an admin said so


def test_cli_create_admin_then_list(studio_env, fast_hash, capsys, monkeypatch):
    code, out, err = run_cli(["users", "create-admin", "root", "--password-stdin"], capsys, "correct horse\n",
                             monkeypatch)
    assert code == 0 and "Admin account 'root' ready" in out, err
    with session_scope() as s:
        assert accounts.authenticate(s, "root", "correct horse").role == "admin"
    code, out, _ = run_cli(["users", "list"], capsys)
    assert code == 0 and "root" in out and "admin" in out
    code, _, err = run_cli(["users", "create-admin", "root", "--password-stdin"], capsys, "another pass\n",
                           monkeypatch)
    assert code == 2 and "taken" in err and "Traceback" not in err
    code, _, err = run_cli(["users", "create-admin", "<b>x</b>", "--password-stdin"], capsys, "correct horse\n",
                           monkeypatch)
    assert code == 2 and "may hold only" in err
    code, _, err = run_cli(["users", "create-admin", "eve", "--password-stdin"], capsys, "short\n", monkeypatch)
    assert code == 2 and "at least" in err


# --- sign-in page when exposed --------------------------------------------------------------------

def _fill_sign_up(at, name, token=None):
    at.text_input(key="su-name").input(name)
    at.text_input(key="su-password").input("correct horse")
    at.text_input(key="su-repeat").input("correct horse")
    if token is not None:
        at.text_input(key="su-token").input(token)
    return button(at, "Create account and sign in").click().run()


def test_exposed_sign_in_page_asks_for_the_setup_token(studio, exposed_server):
    at = page("page_sign_in.py")
    assert not at.exception and "setup token" in texts(at.info)
    _fill_sign_up(at, "mallory", "guess")
    assert "setup token" in texts(at.error) and count(User) == 0 and "user" not in at.session_state
    _fill_sign_up(at, "ada", accounts.setup_token())
    assert not at.exception and at.session_state["user"]["role"] == "admin"


def test_exposed_sign_in_page_has_no_sign_up_form_once_an_admin_exists(studio, exposed_server):
    with session_scope(write=True) as s:
        accounts.create_admin(s, "ada", "correct horse")
    at = page("page_sign_in.py")
    assert not at.exception
    assert "Self sign-up is off" in texts(at.info)
    assert not [t for t in at.text_input if t.key == "su-name"]


def test_admin_turns_self_sign_up_on_from_the_accounts_page(studio, exposed_server):
    admin = signed_in("ada")
    at = open_as("page_label_accounts.py", admin)
    assert not at.exception and at.toggle(key="la-signup").value is False
    at.toggle(key="la-signup").set_value(True).run()
    assert not at.exception and accounts.self_signup_open(exposed=True)
    assert page("page_sign_in.py").text_input(key="su-name") is not None


# --- admin actions re-check the role --------------------------------------------------------------

def _campaign_and_demoted_admin():
    ada, bob = signed_in("ada"), signed_in("bob")
    with session_scope(write=True) as s:
        cid = campaigns.create_campaign(s, "c1", ["first prompt", "second prompt"], k=2).id  # no completions yet
        accounts.set_role(s, ada["id"], bob["id"], "admin")  # bob was an admin …
        accounts.set_role(s, ada["id"], bob["id"], "annotator")  # … and is no more
    return ada, bob, cid


def test_admin_service_functions_refuse_a_demoted_admin(studio):
    ada, bob, cid = _campaign_and_demoted_admin()
    actions = [lambda s, u: admin_actions.set_campaign_status(s, u, cid, "closed"),
               lambda s, u: admin_actions.update_campaign(s, u, cid, overlap=3),
               lambda s, u: admin_actions.queue_completions(s, u, cid),
               lambda s, u: admin_actions.campaign_overview(s, u, cid),
               lambda s, u: admin_actions.cancel_job(s, u, 1)]
    for action in actions:
        for who in (bob["id"], 999):  # demoted, and an account that does not exist
            with pytest.raises(StudioError, match="Only an admin|no longer exists"), session_scope(write=True) as s:
                action(s, who)
    with session_scope() as s:
        campaign = s.get(Campaign, cid)
        assert (campaign.status, campaign.overlap) == ("open", 1)
        assert s.scalar(select(Job.id)) is None
    with session_scope(write=True) as s:
        assert admin_actions.set_campaign_status(s, ada["id"], cid, "closed")["status"] == "closed"
        job = admin_actions.queue_completions(s, ada["id"], cid)
        assert admin_actions.cancel_job(s, ada["id"], job.id) == "cancelled"


def test_submit_job_checks_the_role_before_queueing(studio):
    from jobs.spec_files import list_presets, load_spec_file

    ada, bob, _ = _campaign_and_demoted_admin()
    spec = load_spec_file(list_presets()["sft-lora-tiny-cpu"]).model_copy(update={"base_model": "tiny"})
    with pytest.raises(StudioError, match="Only an admin"), session_scope(write=True) as s:
        admin_actions.submit_job(s, bob["id"], spec, submission_token="t1")
    assert count(Job) == 0
    with session_scope(write=True) as s:
        first = admin_actions.submit_job(s, ada["id"], spec, submission_token="t2").id
    with session_scope(write=True) as s:
        assert admin_actions.submit_job(s, ada["id"], spec, submission_token="t2").id == first  # still idempotent
    assert count(Job) == 1
    from jobs.specs import EvalSpec

    with pytest.raises(StudioError, match="Only an admin"), session_scope(write=True) as s:
        admin_actions.submit_evaluations(s, bob["id"], EvalSpec(model="tiny", dataset="demo:dialogsum"), ["tiny"])
    assert count(Job) == 1


def test_stale_admin_tab_gets_no_more_action(studio):
    """A tab opened while bob was admin; he is demoted; his click on "Close" changes nothing."""
    ada, bob = signed_in("ada"), signed_in("bob")
    with session_scope(write=True) as s:
        cid = synthetic.seed_campaign(s, "c1", n_items=2, k=2).id
        accounts.set_role(s, ada["id"], bob["id"], "admin")
    at = open_as("page_campaigns.py", {**bob, "role": "admin"})
    assert not at.exception
    with session_scope(write=True) as s:
        accounts.set_role(s, ada["id"], bob["id"], "annotator")
    button(at, "Close").click().run()
    with session_scope() as s:
        assert campaigns.find_campaign(s, cid).status == "open"
    assert at.session_state["user"]["role"] == "annotator"  # the fragment guard re-read the role


# --- untrusted text is inert ----------------------------------------------------------------------

EVIL = ("Nice! ![pixel](https://evil.example/p.png?q=secret) [click](https://evil.example) "
        "<img src=https://evil.example/x.png> see https://evil.example/a and www.evil.example\n\n"
        "```python\nxs = [1, 2]\n```\nand `ys[0]`")


def test_safe_markdown_keeps_code_and_text_but_no_link_or_image():
    from app.components.safe_text import safe_markdown

    out = safe_markdown(EVIL)
    assert "](" not in out.replace("\\](", "") and "![" not in out and "\\<img" in out
    assert "https://" not in out and "www.evil" not in out
    assert "```python\nxs = [1, 2]\n```" in out and "`ys[0]`" in out  # code as written
    assert "Nice!" in out and "pixel" in out and "click" in out


def test_safe_markdown_renders_no_image_or_link():
    """Parsed as CommonMark (markdown-it, a proxy for the frontend's parser): no image, no link."""
    markdown_it = pytest.importorskip("markdown_it")
    from app.components.safe_text import safe_markdown

    html = markdown_it.MarkdownIt("commonmark").render(safe_markdown(EVIL))
    assert "<img" not in html and "<a " not in html
    assert "<img" in markdown_it.MarkdownIt("commonmark").render(EVIL)  # the proxy does see the raw image


def test_escape_markdown_and_inert_figure():
    import pandas as pd
    import plotly.express as px

    from app.components.safe_text import escape_markdown, inert_figure

    assert escape_markdown("![p](http://e/x.png) **b** <i>") == "\\!\\[p\\](http:\u200b//e/x.png) \\*\\*b\\*\\* \\<i\\>"
    label = '<a href="https://evil.example">me</a>'
    fig = inert_figure(px.bar(pd.DataFrame({"annotator": [label, "ok"], "n": [1, 2]}), x="annotator", y="n",
                              title=f"t {label}"))
    assert "<a" not in str(fig.data[0].x) and "&lt;a href" in fig.data[0].x[0]
    assert "<a" not in fig.layout.title.text


def test_agreement_outlier_warning_escapes_the_name(studio):
    admin = signed_in("ada")
    evil = "![p](https://evil.example/p.png)"
    with session_scope(write=True) as s:
        synthetic.seed_campaign(s, "q", n_items=12, k=3, overlap=4, annotators=["ann", "ben", "cid", evil],
                                reverse=[evil], noise=0.0)
    at = open_as("page_label_quality.py", admin)  # the report shows as the page opens
    assert not at.exception
    warnings = texts(at.warning)
    assert "may have misunderstood" in warnings
    assert "![" not in warnings and r"\!\[p\]" in warnings


def test_imported_annotator_names_follow_the_same_rule(studio_env):
    import json

    from labeling import importer

    def row(name):
        return json.dumps({"prompt": "p", "completions": ["a", "b"], "ranks": [1, 2], "annotator": name})

    with pytest.raises(importer.RowError, match="annotator must be a user name of letters"):
        importer.parse_row(row("![p](https://evil.example/p.png)"))
    assert importer.parse_row(row("José"))["annotator"] == "José"


def test_setup_token_comes_from_studio_run(monkeypatch):
    monkeypatch.setattr(accounts, "_setup_token", None)
    monkeypatch.setenv("STUDIO_SETUP_TOKEN", "token-from-studio-run")
    assert accounts.setup_token() == "token-from-studio-run"
    monkeypatch.setattr(accounts, "_setup_token", None)
    monkeypatch.delenv("STUDIO_SETUP_TOKEN")
    made = accounts.setup_token()
    assert len(made) >= 24 and accounts.setup_token() == made  # one per process
