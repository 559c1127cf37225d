"""``dialtone user add NAME --role R``: a console user (password from a prompt, or one line
on stdin with ``--password-stdin``; never from the command line, where ``ps`` shows it)."""

from __future__ import annotations

import argparse
import getpass
import os
import sys
import time
from typing import Any

__all__ = ["add_parsers"]


def add_parsers(subparsers: Any) -> None:
    """Register ``user`` (``add``, ``list``) on the top-level subparsers."""
    user = subparsers.add_parser("user", help="the campaign console's users")
    sub = user.add_subparsers(dest="user_command", required=True)
    add = sub.add_parser("add", help="add a console user (admin, manager or viewer)")
    add.add_argument("name")
    add.add_argument("--role", required=True, choices=("admin", "manager", "viewer"))
    add.add_argument("--password-stdin", action="store_true",
                     help="read the password from the first line of stdin")
    add.add_argument("--db", default=None,
                     help="SQLAlchemy URL (default: $DIALTONE_DB or sqlite:///var/dialtone.db)")
    add.set_defaults(func=cmd_user_add)
    ls = sub.add_parser("list", help="list the console's users")
    ls.add_argument("--db", default=None)
    ls.set_defaults(func=cmd_user_list)


def _store(url: str | None) -> Any:
    from dialer.db import DEFAULT_DB_URL, make_engine
    from dialtone.http.users import UserStore

    return UserStore(make_engine(url or os.environ.get("DIALTONE_DB") or DEFAULT_DB_URL))


def cmd_user_add(args: argparse.Namespace) -> int:
    from dialtone.http.users import ConsoleError

    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass(f"password for {args.name}: ")
        if getpass.getpass("again: ") != password:
            print("dialtone user add: the passwords differ", file=sys.stderr)
            return 2
    try:
        _store(args.db).add_user(args.name, password, args.role, now=time.time())
    except ConsoleError as exc:
        print(f"dialtone user add: {exc}", file=sys.stderr)
        return 2
    print(f"user {args.name} added ({args.role})")
    return 0


def cmd_user_list(args: argparse.Namespace) -> int:
    for _id, name, role, _at in _store(args.db).users():
        print(f"{name}\t{role.value}")
    return 0
