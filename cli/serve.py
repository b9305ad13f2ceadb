"""``studio run``: start the Streamlit server on loopback, with the studio's options passed as flags.

Streamlit reads ``.streamlit/config.toml`` from the current directory only, so ``studio run`` started elsewhere
would lose it (tracebacks shown to users, the file watcher on). The command passes every option of that file as a
``--section.key value`` flag, so the options hold wherever it starts (the current directory stays the user's: a
relative ``STUDIO_DATA_DIR`` and ``.env`` mean the same as for every other command).
"""

import argparse
import os
import secrets
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / "app" / "server.py"  # studio_app.py plus the sign-in cookie routes
CONFIG = ROOT / ".streamlit" / "config.toml"


def _flag_value(value) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def config_flags(config: Path = CONFIG) -> list[str]:
    """``.streamlit/config.toml`` as command-line flags (``[server] headless = true`` → ``--server.headless true``)."""
    if not config.is_file():
        return []
    flags = []
    for section, options in tomllib.loads(config.read_text(encoding="utf-8")).items():
        for key, value in options.items():
            if f"{section}.{key}" in ("server.address", "server.port"):  # ours, below
                continue
            flags += [f"--{section}.{key}", _flag_value(value)]
    return flags


def streamlit_command(host: str, port: int) -> list[str]:
    """The command that serves the studio on ``host:port`` (the config file's options first, then ours)."""
    return [sys.executable, "-m", "streamlit", "run", str(APP), *config_flags(),
            "--server.address", host, "--server.port", str(port)]


def cmd_run(args: argparse.Namespace) -> None:
    from backend.settings import get_settings, is_loopback

    host = args.host or get_settings().host
    env = {**os.environ, "STUDIO_HOST": host}
    if not is_loopback(host):
        env["STUDIO_SETUP_TOKEN"] = token = secrets.token_urlsafe(24)
        print(f"Exposing the studio on {host}:{args.port}: anyone who can reach this address can open its sign-in "
              "page. Self sign-up is off unless an admin turns it on.\n"
              f"If the studio has no admin yet, create the first one on the sign-in page with this setup token:\n\n"
              f"    {token}\n\n(or beforehand: `studio users create-admin NAME`).", file=sys.stderr, flush=True)
    cmd = streamlit_command(host, args.port)
    os.execve(cmd[0], cmd, env)  # become the server: a signal to `studio run` (Ctrl-C, SIGTERM) reaches it


def register(subparsers) -> None:
    r = subparsers.add_parser("run", help="Open the studio in the browser (on this machine only, unless --host).")
    r.add_argument("--port", type=int, default=8501)
    r.add_argument("--host", default=None,
                   help="Address to listen on (default: STUDIO_HOST, else 127.0.0.1 = this machine only). "
                        "0.0.0.0 exposes the studio to the network: see README, Security.")
    r.set_defaults(func=cmd_run)
