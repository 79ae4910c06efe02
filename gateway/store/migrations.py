"""``gateway migrations bootstrap | up | finish | list | reset``: Kong's ``kong migrations``, its words and exit codes.

Kong's behaviour (``kong/cmd/migrations.lua``, ``kong/cmd/utils/migrations.lua``), kept here:

=========  ==================================================================================  =========
command    what it prints                                                                      exit
=========  ==================================================================================  =========
bootstrap  ``Bootstrapping database...``, each migration, ``Database is up-to-date``;             0
           a second time: ``Database already bootstrapped``                                    0
up         each new migration; nothing new: ``Database is already up-to-date``                  0
           not bootstrapped: ``Error: Cannot run migrations: Database needs bootstrapping...``  1
finish     ``No pending migrations to finish`` (no migration here has a teardown phase)         0
list       ``Executed migrations:`` and the names                                              0
           new migrations: also ``New migrations available:``, ``Run '... migrations up'``      5
           not bootstrapped: ``Database needs bootstrapping...``                               3
reset      ``Resetting database...``, ``Database successfully reset``                          0
           not bootstrapped: ``Database not bootstrapped, nothing to reset``                   1
           no ``--yes`` and no terminal: ``Error: not a tty: ...``                               1
=========  ==================================================================================  =========

The commands named in messages use the name the program was called by (``kong`` or ``gateway``).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gateway.store.backend import StoreUnavailable
from gateway.store.migration_state import MigrationTarget, SchemaState, SqliteMigrations

__all__ = ["COMMANDS", "Console", "needs_bootstrap_message", "program", "run_command", "start_refusal", "target_for"]

COMMANDS = ("bootstrap", "up", "finish", "list", "reset")
SUBSYSTEM = "core"
"""The one migration namespace, as Kong's ``core`` (plugins here bring no tables of their own)."""


def program() -> str:
    """``kong`` when called by that name (a CI script written for Kong), else ``gateway``."""
    return "kong" if os.path.basename(sys.argv[0] or "") == "kong" else "gateway"


def needs_bootstrap_message(prog: str | None = None) -> str:
    return (
        "Database needs bootstrapping or is older than Kong 1.0.\n\n"
        f"To start a new installation from scratch, run '{prog or program()} migrations bootstrap'."
    )


def start_refusal(state: SchemaState, prog: str | None = None) -> str | None:
    """Why ``start`` refuses this database (Kong's ``check_state``), or None when it is up to date."""
    if state.needs_bootstrap:
        return needs_bootstrap_message(prog)
    if state.new:
        return f"New migrations available; run '{prog or program()} migrations up' to proceed"
    return None


@dataclass
class Console:
    """Where a command writes: ``out`` for Kong's ``log()`` lines, ``err`` for ``Error: ...``; ``ask`` prompts."""

    out: Callable[[str], None] = print
    err: Callable[[str], None] = field(default=lambda text: print(text, file=sys.stderr))
    isatty: Callable[[], bool] = field(default=lambda: sys.stdin.isatty())
    ask: Callable[[str], str] = input


def target_for(settings: Any) -> MigrationTarget:
    """The database the settings name."""
    database = settings.database
    if database == "postgres":
        from gateway.store.pg_migrate import PgMigrations
        from gateway.store.postgres import PgParams

        return PgMigrations(PgParams.from_settings(settings))
    if database == "sqlite":
        path_of = settings.path
        return SqliteMigrations(path_of(settings.sqlite_database))
    raise StoreUnavailable("database = off has no schema to migrate (DB-less: the configuration lives in memory)")


def _names(names: list[str]) -> str:
    return f"{SUBSYSTEM}: {', '.join(names)}"


def _ran(target: MigrationTarget, names: list[str], console: Console) -> None:
    """Kong's ``run_migrations`` lines."""
    console.out(f"migrating {SUBSYSTEM} on {target.db_desc} '{target.db_name}'...")
    for name in names:
        console.out(f"{SUBSYSTEM} migrated up to: {name} (executed)")
    console.out(f"{len(names)} migration{'s' if len(names) > 1 else ''} processed")
    if names:
        console.out(f"{len(names)} executed")


def _list(target: MigrationTarget, console: Console, prog: str) -> int:
    state = target.state()
    if state.needs_bootstrap:
        console.out(needs_bootstrap_message(prog))
        return 3
    gap = ""
    if state.executed:
        console.out(f"Executed migrations:\n{_names(state.executed)}")
        gap = "\n"
    if state.new:
        console.out(f"{gap}New migrations available:\n{_names(state.new)}")
        console.out(f"\nRun '{prog} migrations up' to proceed")
        return 5
    return 0


def _reset(target: MigrationTarget, console: Console, yes: bool) -> int:
    if not yes:
        if not console.isatty():
            console.err("Error: not a tty: invoke 'reset' non-interactively with the --yes flag")
            return 1
        if not target.state().needs_bootstrap:
            for _ in range(3):
                answer = console.ask("> Are you sure? This operation is irreversible. [y/n] ").strip()
                if answer in ("y", "Y", "yes", "YES"):
                    break
                if answer in ("n", "N", "no", "NO"):
                    console.out("cancelled")
                    return 0
            else:
                console.out("cancelled")
                return 0
    if target.state().needs_bootstrap:
        console.out("Database not bootstrapped, nothing to reset")
        return 1
    console.out("Resetting database...")
    if not target.reset():  # another node reset it in the meantime
        console.out("Database not bootstrapped, nothing to reset")
        return 1
    console.out("Database successfully reset")
    return 0


def _dispatch(command: str, target: MigrationTarget, console: Console, yes: bool, prog: str) -> int:
    if command == "list":
        return _list(target, console, prog)
    if command == "reset":
        return _reset(target, console, yes)
    if command == "bootstrap":
        if not target.state().needs_bootstrap:
            console.out("Database already bootstrapped")
            return 0
        console.out("Bootstrapping database...")
        ran = target.bootstrap()
        if ran is None:  # another node bootstrapped it in the meantime
            console.out("Database already bootstrapped")
            return 0
        _ran(target, ran, console)
        console.out("Database is up-to-date")
        return 0
    state = target.state()
    if state.needs_bootstrap:
        console.err(f"Error: Cannot run migrations: {needs_bootstrap_message(prog)}")
        return 1
    if command == "up":
        if not state.new:
            console.out("Database is already up-to-date")
            return 0
        _ran(target, target.up(), console)
        return 0
    # finish: nothing is ever pending here
    if state.new:
        console.out(f"\nNew migrations available; run '{prog} migrations up' to proceed")
    else:
        console.out("No pending migrations to finish")
    return 0


def run_command(command: str, settings: Any, console: Console | None = None, yes: bool = False) -> int:
    """Run one ``migrations`` command; returns the exit code. A database that cannot be reached is ``Error: ...``
    and exit 1, as any Kong command that fails."""
    console = console or Console()
    prog = program()
    try:
        return _dispatch(command, target_for(settings), console, yes, prog)
    except StoreUnavailable as exc:
        console.err(f"Error: {exc}")
        return 1
