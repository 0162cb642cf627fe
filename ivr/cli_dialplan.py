"""``ivr dialplan ...``: Asterisk configuration generated from the roster.

``endpoints`` prints (or writes) ``dialplans/pjsip_agents.conf``, the PJSIP
endpoints the engine originates to; ``members`` prints (or rewrites in place) the
member block of the ``ivr-fallback`` queue in ``dialplans/queues.conf``. Both read
only the roster: no database, no Asterisk, so they run anywhere, and the tests
compare their output with the committed files so the two cannot drift.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from agents.endpoints import (
    DEFAULT_PASSWORD_PLACEHOLDER,
    render_pjsip_agents,
    render_queue_members,
    replace_generated_block,
)
from agents.roster import Roster

app = typer.Typer(no_args_is_help=True, help="Asterisk configuration generated from the roster (agents.yaml).")

AgentsOpt = typer.Option(Path("agents.yaml"), "--agents", help="The roster")


def _roster(agents: Path) -> Roster:
    """Load the roster, or print every problem with its position and exit 1 (as the other commands do)."""
    from agents.roster import load_roster
    from ivr.configfile import ConfigInvalid

    try:
        return load_roster(agents)
    except ConfigInvalid as exc:
        for d in exc.diagnostics:
            typer.echo(d.render(), err=True)
        raise typer.Exit(1) from None


@app.command("endpoints")
def endpoints(
    agents: Path = AgentsOpt,
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Write here (e.g. dialplans/pjsip_agents.conf) instead of stdout"),
    password_placeholder: str = typer.Option(DEFAULT_PASSWORD_PLACEHOLDER, "--password-placeholder",
                                             help="Placeholder written as each password ({ext} = the extension); "
                                                  "real passwords go in pjsip_secrets.conf"),
) -> None:
    """Print the PJSIP endpoints, auths and aors of the roster's PJSIP agents (the pjsip_agents.conf include)."""
    roster = _roster(agents)
    try:
        text = render_pjsip_agents(roster, password_var=password_placeholder)
    except ValueError as exc:
        typer.echo(f"{agents}: {exc}", err=True)
        raise typer.Exit(1) from None
    if out is None:
        typer.echo(text, nl=False)
        return
    out.write_text(text, encoding="utf-8")
    typer.echo(f"wrote {out}")


@app.command("members")
def members(
    agents: Path = AgentsOpt,
    update: Optional[Path] = typer.Option(None, "--update", help="Rewrite the generated member block of this queues.conf in place"),
) -> None:
    """Print the ivr-fallback queue's member block (queues.conf), or rewrite it in place with --update."""
    roster = _roster(agents)
    try:
        block = render_queue_members(roster)
        if update is None:
            typer.echo(block, nl=False)
            return
        new = replace_generated_block(update.read_text(encoding="utf-8"), block)
    except (ValueError, OSError) as exc:
        typer.echo(f"{update or agents}: {exc}", err=True)
        raise typer.Exit(1) from None
    update.write_text(new, encoding="utf-8")
    typer.echo(f"updated {update}")
