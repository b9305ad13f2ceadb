"""``studio users``: make an admin account from the terminal (the safe way to start an exposed studio), list users.

Whoever can run this can write the database already, so it needs no setup token.
"""

import argparse
import getpass
import sys

from backend.errors import StudioError


def _password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if not sys.stdin.isatty():
        raise StudioError("No terminal to ask for the password: pipe it in with --password-stdin.")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Repeat password: ") != first:
        raise StudioError("The two passwords differ: run the command again.")
    return first


def cmd_users(args: argparse.Namespace) -> None:
    from backend.db.engine import session_scope, upgrade_database
    from labeling import accounts

    upgrade_database()
    if args.users_cmd == "create-admin":
        password = _password(args)
        with session_scope(write=True) as s:
            user = accounts.create_admin(s, args.name, password)
            name = user.name
        print(f"Admin account '{name}' ready: sign in with it in the studio.")
        return
    with session_scope() as s:
        rows = [accounts.public(u) for u in accounts.all_users(s)]
    for row in rows:
        print(f"{row['name']:<40} {row['role']:<10} {'can sign in' if row['can_sign_in'] else 'no password'}")
    if not rows:
        print("No accounts yet: `studio users create-admin NAME`, or sign up on the studio's page.")


def register(subparsers) -> None:
    p = subparsers.add_parser("users", help="Create an admin account; list accounts.")
    sub = p.add_subparsers(dest="users_cmd", required=True)
    c = sub.add_parser("create-admin", help="Create an admin account (or give an imported annotator's name a "
                       "password and the admin role). Asks for the password twice.")
    c.add_argument("name", help="User name: letters, digits, spaces and . _ - @ '.")
    c.add_argument("--password-stdin", action="store_true", help="Read the password from standard input's first line.")
    sub.add_parser("list", help="Every account with its role.")
    p.set_defaults(func=cmd_users)
