"""The ``ivr`` command: validate, simulate, test and graph call trees.

Exit codes: 0 success; 1 a tree or test failed; 2 the command was used wrongly.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional

import typer

from ivr.errors import Diagnostic, Severity, TreeInvalid
from ivr.flowtest import TESTS_SUFFIX, find_test_files, run_file
from ivr.simulate import QUEUE_OUTCOMES, CallSimulator, Line, SimOptions, describe_outcome, parse_keys
from ivr.timeparse import parse_at
from ivr.tree import check_tree, load_tree

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Clinic IVR: call trees, routing and simulation.")


def _tree_files(paths: list[Path]) -> list[Path]:
    files: list[Path] = []
    for p in paths:
        if p.is_dir():
            files.extend(f for f in sorted(p.rglob("*.y*ml")) if not f.name.endswith((TESTS_SUFFIX, ".tests.yml")))
        elif not p.exists():
            typer.echo(f"{p}: no such file or folder", err=True)
            raise typer.Exit(2)
        else:
            files.append(p)
    return files


def _print_diag(d: Diagnostic) -> None:
    typer.echo(d.render(), err=False)


@app.command()
def validate(
    paths: list[Path] = typer.Argument(..., help="Tree files or folders (folders: every *.yaml except *.tests.yaml)"),
    as_json: bool = typer.Option(False, "--json", help="Print machine-readable results"),
) -> None:
    """Check trees: schema, graph, and safety lints. Exit 1 if anything blocks publication."""
    files = _tree_files(paths)
    if not files:
        typer.echo("no call-tree files found", err=True)
        raise typer.Exit(2)
    results: list[dict[str, Any]] = []
    failed = False
    for f in files:
        tree, diags = check_tree(f)
        blocking = [d for d in diags if d.blocking]
        failed |= bool(blocking) or tree is None
        metrics = tree.metrics if tree is not None else {}
        results.append({"file": str(f), "ok": tree is not None and not blocking, "diagnostics": [d.to_json() for d in diags],
                        "metrics": metrics})
        if as_json:
            continue
        for d in diags:
            _print_diag(d)
        counts = {s: sum(1 for d in diags if d.severity is s) for s in Severity}
        waived = sum(1 for d in diags if d.waived)
        status = "OK" if tree is not None and not blocking else "FAILED"
        typer.echo(f"{f}: {status}: {counts[Severity.ERROR]} error(s), {counts[Severity.LINT] - waived} lint(s)"
                   f"{f' ({waived} waived)' if waived else ''}, {counts[Severity.WARNING]} warning(s)")
        if metrics:
            secs = metrics.get("seconds_to_human")
            path = " -> ".join(metrics.get("seconds_to_human_path", []))
            typer.echo(f"  time to a person: {secs:.1f} s worst case (bound {metrics['seconds_to_human_bound']:g} s) via {path}")
            ah = metrics.get("after_hours_human_path")
            typer.echo(f"  after hours, all queues closed: {' -> '.join(ah) if ah else 'NO PATH TO A PERSON'}")
    if as_json:
        typer.echo(json.dumps({"ok": not failed, "files": results}, indent=2, ensure_ascii=False))
    raise typer.Exit(1 if failed else 0)


def _fmt_t(t: float) -> str:
    m, s = divmod(t, 60)
    return f"{int(m):02d}:{s:04.1f}"


def _print_line(line: Line) -> None:
    lang = f"{line.language:<2}" if line.language else "  "
    node = f"{line.node:<20}"
    if line.kind == "hear":
        text = line.text if line.text.startswith("[") else f'"{line.text}"'
        typer.echo(f" {_fmt_t(line.t)}  {node} {lang} hears {text}")
    elif line.kind == "press":
        typer.echo(f" {_fmt_t(line.t)}  {node} {lang} presses {line.text}")
    elif line.kind == "timeout":
        typer.echo(f" {_fmt_t(line.t)}  {node} {lang} (no key: timeout)")
    elif line.kind == "end":
        typer.echo(f" {_fmt_t(line.t)}  => {line.text}")
    else:
        typer.echo(f" {_fmt_t(line.t)}  {node} {lang} {line.text}")


def _queue_outcomes(values: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for v in values:
        if "=" not in v:
            raise typer.BadParameter(f"{v!r}: write QUEUE=OUTCOME, e.g. scheduling=answered")
        q, o = v.split("=", 1)
        if o not in QUEUE_OUTCOMES:
            raise typer.BadParameter(f"{o!r}: outcome is one of {', '.join(QUEUE_OUTCOMES)}")
        out[q] = o
    return out


def _load_for_run(tree_path: Path, allow_lints: bool) -> Any:
    try:
        return load_tree(tree_path, allow_lints=allow_lints)
    except TreeInvalid as exc:
        for d in exc.diagnostics:
            if d.blocking:
                _print_diag(d)
        typer.echo(f"{tree_path}: the tree has blocking problems; run `ivr validate {tree_path}`"
                   f"{'' if allow_lints else ' (or --allow-lints to walk a draft with unwaived lints)'}", err=True)
        raise typer.Exit(1) from None


@app.command()
def simulate(
    tree_path: Path = typer.Argument(..., metavar="TREE", help="The call-tree YAML file"),
    keys: Optional[str] = typer.Option(None, "--keys", "-k", help='Key script, e.g. "2 04121980#"; tokens: digits, !digits (barge-in), . (timeout), h (hang up). Omit for interactive.'),
    at: Optional[str] = typer.Option(None, "--at", help='Call time in the clinic\'s zone, e.g. "2026-11-23 09:30" (default: now)'),
    caller: Optional[str] = typer.Option("+15555550123", "--caller", help="Calling number (E.164); 'withheld' for none"),
    language: Optional[str] = typer.Option(None, "--language", "-l", help="Language the call starts in"),
    queue: list[str] = typer.Option([], "--queue-outcome", "-q", help="QUEUE=handoff|answered|closed|no_agents|full|timeout (repeatable)"),
    hooks: Optional[str] = typer.Option(None, "--hooks", help="Deployment hooks module (file.py or package.module)"),
    fail_transfer: list[str] = typer.Option([], "--fail-transfer", help="Node id or number whose transfer fails (repeatable)"),
    agents: Optional[Path] = typer.Option(None, "--agents", help="Route queues with the real router over this roster (agents.yaml)"),
    queues_file: Optional[Path] = typer.Option(None, "--queues", help="Queue configuration for --agents (default: queues.yaml beside it)"),
    not_ready: list[str] = typer.Option([], "--not-ready", help="With --agents: this agent is paused (repeatable)"),
    no_answer: list[str] = typer.Option([], "--no-answer", help="With --agents: this agent lets offers ring out (repeatable)"),
    as_json: bool = typer.Option(False, "--json", help="Print the trace as JSON"),
    allow_lints: bool = typer.Option(False, "--allow-lints", help="Walk a draft that still has unwaived safety lints"),
) -> None:
    """Walk one call through a tree and print what the caller hears and where the call ends."""
    tree = _load_for_run(tree_path, allow_lints)
    try:
        when = parse_at(at, tree.tz, now=datetime.now(timezone.utc))
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--at") from None
    hook_fns: dict[str, Any] = {}
    if hooks:
        from ivr.hooks import HookLoadError, load

        try:
            hook_fns = dict(load(hooks))
        except HookLoadError as exc:
            typer.echo(f"{exc.error_id}: {exc}", err=True)
            raise typer.Exit(2) from None
    routing = None
    if agents is not None:
        from ivr.configfile import ConfigInvalid
        from routing.simulated import SimRouting

        try:
            routing = SimRouting.from_files(agents, queues_file or agents.with_name("queues.yaml"), when,
                                            not_ready=set(not_ready), no_answer=set(no_answer))
        except ConfigInvalid as exc:
            for d in exc.diagnostics:
                _print_diag(d)
            raise typer.Exit(1) from None
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--not-ready/--no-answer") from None
    interactive = keys is None
    try:
        tokens = None if interactive else parse_keys(keys)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--keys") from None
    opts = SimOptions(
        at=when,
        caller=None if caller in (None, "", "withheld") else caller,
        language=language,
        keys=tokens,
        queue_outcomes=_queue_outcomes(queue),
        hooks=hook_fns,
        failing_transfers=set(fail_transfer),
        routing=routing,
    )

    def ask(context: str) -> str:
        # The question goes to stderr so that stdout stays a clean transcript (or clean JSON with --json).
        while True:
            sys.stderr.write(f"   keys at {context} [digits, . wait, h hang up]> ")
            sys.stderr.flush()
            line = sys.stdin.readline()
            if not line:
                return "h"  # end of input: the caller hangs up
            got = line.strip() or "."
            try:
                parse_keys(got)
            except ValueError as exc:
                sys.stderr.write(f"   {exc}\n")
                continue
            return got.split()[0] if " " in got else got

    sim = CallSimulator(tree)
    if as_json:
        res = sim.run(opts, ask=ask if interactive else None)
        typer.echo(json.dumps(_trace_json(tree, res), indent=2, ensure_ascii=False, default=str))
        return
    if interactive:
        typer.echo("Interactive call: type the keys the caller presses at each prompt; '.' lets the input time out; "
                   "'h' hangs up.", err=True)
    res = sim.run(opts, ask=ask if interactive else None, on_line=_print_line, record_lines=False)


def _trace_json(tree: Any, res: Any) -> dict[str, Any]:
    o = res.state.outcome
    return {
        "tree": tree.label,
        "call_id": res.state.call_id,
        "language": res.state.language,
        "seconds": res.seconds,
        "outcome": None if o is None else {"kind": o.kind, "node": o.node, "at": o.at.isoformat(), **o.detail},
        "summary": describe_outcome(res.state),
        "trace": [{"at": e.at.isoformat(), "t": round((e.at - res.state.started_at).total_seconds(), 2),
                   "node": e.node, "kind": e.kind, **e.detail} for e in res.state.trace],
        "transcript": [{"t": ln.t, "kind": ln.kind, "node": ln.node, "language": ln.language, "text": ln.text} for ln in res.lines],
    }


@app.command("test")
def test_cmd(
    paths: list[Path] = typer.Argument(..., help="Folders, *.tests.yaml files, or trees (their NAME.tests.yaml is used)"),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Print the transcript of failing scenarios"),
) -> None:
    """Run flow-test scenarios kept beside the trees; exit 1 on any failure."""
    for p in paths:
        if not p.exists():
            typer.echo(f"{p}: no such file or folder", err=True)
            raise typer.Exit(2)
    files = find_test_files(paths)
    if not files:
        typer.echo("no *.tests.yaml flow-test files found", err=True)
        raise typer.Exit(2)
    passed = failed = 0
    for f in files:
        fr = run_file(f)
        typer.echo(f"{f}")
        for d in fr.diagnostics:
            _print_diag(d)
        if fr.diagnostics and any(d.blocking for d in fr.diagnostics):
            typer.echo("  cannot run: fix the problems above")
            failed += 1
            continue
        for sc in fr.scenarios:
            if sc.passed:
                passed += 1
                typer.echo(f"  PASS  {sc.name}")
            else:
                failed += 1
                typer.echo(f"  FAIL  {sc.name}")
                for msg in sc.failures:
                    typer.echo(f"        {msg}")
                if verbose and sc.result is not None:
                    for line in sc.result.lines:
                        _print_line(line)
    typer.echo(f"{passed} passed, {failed} failed")
    raise typer.Exit(1 if failed else 0)


@app.command()
def graph(
    tree_path: Path = typer.Argument(..., metavar="TREE"),
    fmt: str = typer.Option("mermaid", "--format", "-f", help="mermaid, dot or svg (svg needs Graphviz)"),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write to this file instead of stdout"),
) -> None:
    """Draw the tree as a diagram (Mermaid, Graphviz DOT, or SVG)."""
    from ivr.graph import GraphUnavailable, render

    if fmt not in ("mermaid", "dot", "svg"):
        raise typer.BadParameter("use mermaid, dot or svg", param_hint="--format")
    tree = _load_for_run(tree_path, allow_lints=True)
    try:
        text = render(tree, fmt)
    except GraphUnavailable as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    if output:
        output.write_text(text, encoding="utf-8")
        typer.echo(f"wrote {output}")
    else:
        typer.echo(text)


@app.command()
def serve(
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="Engine config file (see ivr-engine.example.yaml); "
                                          "default: embedded defaults (sample clinic, SQLite, 127.0.0.1:8080, no Asterisk)"),
    host: Optional[str] = typer.Option(None, "--host", help="Web server address (overrides the config)"),
    port: Optional[int] = typer.Option(None, "--port", help="Web server port; 0 picks a free one"),
    log_json: bool = typer.Option(False, "--log-json", help="Log as JSON lines (for log shippers)"),
) -> None:
    """Run the live engine: trees, routing store, web endpoints, and Asterisk (ARI + AMI) when configured."""
    import asyncio
    import os

    from ivr import engine_config, logsetup
    from ivr.configfile import ConfigInvalid
    from ivr.errors import IvrError
    from ivr.serve import serve as run_serve

    logsetup.configure(json=log_json)
    env = dict(os.environ)
    if host is not None:
        env["IVR_HOST"] = host
    if port is not None:
        env["IVR_PORT"] = str(port)
    try:
        cfg = engine_config.load(config, env)
    except ConfigInvalid as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2)
    except IvrError as exc:
        typer.echo(f"error[{exc.error_id}]: {exc}", err=True)
        raise typer.Exit(2)

    def ready(running: Any) -> None:
        trees = ", ".join(running.trees)
        ast = "Asterisk at " + cfg.asterisk.ari_url if cfg.asterisk else "no Asterisk configured (web and routing only)"
        typer.echo(f"ivr engine listening on {running.url} (health: {running.url}/health); trees: {trees}; {ast}",
                   err=False)
        sys.stdout.flush()

    try:
        asyncio.run(run_serve(cfg, on_ready=ready))
    except TreeInvalid as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1)
    except (IvrError, OSError) as exc:
        typer.echo(f"error[{getattr(exc, 'error_id', 'E-SERVE')}]: {exc}", err=True)
        raise typer.Exit(1)
    typer.echo("ivr engine stopped")


demo_app = typer.Typer(no_args_is_help=True, help="Demonstrations that need no phone line, account or network.")


@demo_app.command("twilio")
def demo_twilio(
    keys: str = typer.Option("1 1 5", "--keys", "-k", help="The caller's key presses, one token per menu"),
    agent: list[str] = typer.Option(["answer"], "--agent", help="What the agent's phone does per ring: answer, no-answer, busy"),
    ready: list[str] = typer.Option(["ana.lopez", "ben.carter"], "--ready", help="Agents logged in and ready"),
    tree: Path = typer.Option(Path("calltrees/clinic-main.yaml"), "--tree"),
    at: str = typer.Option("2026-11-23 09:30", "--at", help="When the call happens, in the clinic's time zone "
                           "(default: a Monday morning, office open)"),
) -> None:
    """One call through the Twilio endpoints on 127.0.0.1, played by a simulated Twilio with signed webhooks."""
    import asyncio

    from ivr.engine_config import PACKAGE_ROOT
    from ivr.twilio.demo import run_demo

    def find(p: Path) -> Path:
        return p if p.exists() else PACKAGE_ROOT / p

    tree_path = find(tree)
    when = parse_at(at, load_tree(tree_path).tz)
    out = asyncio.run(run_demo(tree_path, find(Path("agents.yaml")), find(Path("queues.yaml")), keys=keys,
                               agent=list(agent), ready=tuple(ready), at=when))
    typer.echo(f"engine's Twilio endpoints at {out['base']}; every request signed and checked\n")
    typer.echo(out["transcript"])
    rec = out["record"]
    if rec is not None:
        typer.echo(f"\ncall record: outcome {rec.outcome}, queue {rec.queue or '-'}, agent {rec.agent_id or '-'}, "
                   f"ended by {rec.ended_by}")
    if out["errors"]:
        typer.echo("errors: " + "; ".join(out["errors"]), err=True)
        raise typer.Exit(1)


app.add_typer(demo_app, name="demo")


def _add_ops_commands() -> None:
    from ivr.cli_report import report
    from ivr.cli_simday import simulate_day
    from ivr.cli_staff import staff

    app.command("report")(report)
    app.command("staff")(staff)
    app.command("simulate-day")(simulate_day)


_add_ops_commands()


def _add_routing_commands() -> None:
    from ivr.cli_routing import agents_app, queues_app

    app.add_typer(agents_app, name="agents")
    app.add_typer(queues_app, name="queues")


_add_routing_commands()


def _add_dialplan_commands() -> None:
    from ivr.cli_dialplan import app as dialplan_app
    from ivr.cli_prompts import app as prompts_app

    app.add_typer(dialplan_app, name="dialplan")
    app.add_typer(prompts_app, name="prompts")


_add_dialplan_commands()


def main() -> None:
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
