"""`miaopi`: list items, decide a case, replay a case file, from a terminal or a script.

Exit codes: 0 success (any decision is a success), 1 RPC failure, replay mismatches, a broken
audit trail or a receipt that does not verify, 2 bad input (INVALID_ARGUMENT, unreadable facts,
case file, decision file, key or audit database, rule files that do not load, usage),
3 NOT_FOUND. Errors go to stderr as one readable line, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from . import render
from .alerts_cli import add_alerts_parser
from .cases import count_lines, load_cases, unbuildable
from .client import TLS, CaseFileError, Client, ClientError
from .cmdline import (
    BAD_INPUT,
    FAILED,
    NOT_FOUND,
    OK,
    BadInput,
    date_arg,
    err,
    print_json,
    read_facts,
    read_saved_decision,
    seq_arg,
)
from .kpi_cli import add_kpi_parser
from .notice_cli import add_notice_parser
from .parallel import PARALLEL_MIN_CASES
from .replay import ReplayReport, junit_xml, remote, replay, replay_file
from .review_cli import add_review_parsers
from .rules_cli import add_rules_parsers

DEFAULT_TARGET = "127.0.0.1:50051"


def _one_line(s: str) -> str:
    return " ".join(s.split())


def _cmd_items(args: argparse.Namespace) -> int:
    with _client(args, args.target, "window") as c:
        items = c.list_items()
    if args.json:
        print_json(items)
    else:
        print(render.item_list(items))
    return OK


def _cmd_item(args: argparse.Namespace) -> int:
    with _client(args, args.target, "window") as c:
        item = c.get_item(args.code)
    if args.json:
        print_json(item)
    else:
        print(render.item(item))
    return OK


def _cmd_decide(args: argparse.Namespace) -> int:
    facts = read_facts(args.facts)
    materials = [m.strip() for m in args.materials.split(",") if m.strip()]
    if args.dry_run:
        if args.request_id or args.consent:
            raise BadInput(
                "--dry-run records no decision and looks nothing up: "
                "leave out --request-id and --consent"
            )
        with _client(args, args.target, "supervisor") as c:
            d = c.dry_run_decide(args.item, facts, materials, args.window_id, args.operator_id)
    else:
        with _client(args, args.target, "window") as c:
            d = c.decide(
                args.item,
                facts,
                materials,
                request_id=args.request_id,
                window_id=args.window_id,
                operator_id=args.operator_id,
                consent=args.consent,
            )
    if args.json:
        print_json(d)
    else:
        print(render.decision(d, colour=render.use_colour(sys.stdout)))
    return OK


def _replay_in_process(args: argparse.Namespace) -> ReplayReport:
    # Only the in-process path needs the server.
    from miaopi_server.offline import RegistryInvalid, RuleFileError

    # stderr, terminals, big files (the file's lines are counted only for a bar)
    bar = render.progress_bar(lambda: count_lines(args.cases), "replay")
    try:
        return replay_file(
            args.cases,
            args.rulesets,
            args.today,
            jobs=args.replay_jobs or 0,
            progress=bar.update,
            refetch=args.registry if args.refetch else None,
        )
    except RuleFileError as exc:
        raise BadInput(f"rule files in {args.rulesets} failed to load:\n{exc}") from None
    except RegistryInvalid as exc:
        raise BadInput(f"registry {args.registry} failed to load: {exc}") from None
    finally:
        bar.close()


def _cmd_replay(args: argparse.Namespace) -> int:
    if args.replay_jobs is not None and args.rulesets is None:
        raise BadInput("--jobs needs --rulesets: a server decides in its own processes")
    if args.dry_run and (args.rulesets is not None or args.refetch):
        raise BadInput(
            "--dry-run is for a server, deciding on the recorded lookups: not with --rulesets "
            "(nothing is recorded there anyway) or --refetch"
        )
    if args.rulesets is not None and args.refetch and args.registry is None:
        raise BadInput("--refetch with --rulesets needs --registry DIR: where to look up again")
    if args.registry is not None and (args.rulesets is None or not args.refetch):
        raise BadInput("--registry is for --refetch with --rulesets (a server has its own)")
    _offline_or_server(args, "--rulesets", args.rulesets)
    if args.rulesets is not None:
        report = _replay_in_process(args)
    else:
        cases = load_cases(args.cases)

        def progress(items: Any) -> Any:  # a bar on stderr for big files, terminals only
            return render.progress(items, len(cases), "replay")

        role = "supervisor" if args.dry_run else "window"
        with _client(args, args.target, role) as c:
            decider = remote(c, args.refetch, args.window_id, dry_run=args.dry_run)
            report = replay(cases, decider, progress)
    if args.junit is not None:
        try:
            args.junit.write_bytes(junit_xml(report, str(args.cases)))
        except OSError as exc:
            raise BadInput(f"cannot write {args.junit}: {exc}") from None
    if args.json:
        print(report.to_json())
    else:
        print(render.replay_summary(report, str(args.cases)))
    return OK if report.failed == 0 else FAILED


def _token(args: argparse.Namespace, role: str) -> str | None:
    """--token-file, else --token, else $MIAOPI_TOKEN, else the development token for `role`
    that the server wrote under its state directory (var/dev-tokens.json) on first start."""
    if args.token_file is not None:
        try:
            token: str = Path(args.token_file).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise BadInput(f"cannot read --token-file {args.token_file}: {exc}") from None
        if not token or any(c.isspace() for c in token):
            raise BadInput(f"--token-file {args.token_file}: should hold one token, no spaces")
        return token
    if args.token or os.environ.get("MIAOPI_TOKEN"):
        return str(args.token or os.environ["MIAOPI_TOKEN"])
    try:
        tokens = json.loads(Path(args.dev_tokens).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return tokens.get(role) if isinstance(tokens, dict) else None


def _client(args: argparse.Namespace, target: str, role: str) -> Client:
    """A client for `target` authenticated for what this command needs (`role`)."""
    tls = None
    if args.tls_ca or args.tls_cert:
        tls = TLS(args.tls_ca, args.tls_cert, args.tls_key)
    return Client(target, args.timeout, token=_token(args, role), tls=tls)


def _cmd_reload(args: argparse.Namespace) -> int:
    with _client(args, args.target, "admin") as c:
        result = c.reload_rulesets()
    if args.json:
        print_json(result)
        return OK if result.get("applied") else FAILED
    if result.get("applied"):
        changes = [
            f"{k}: {', '.join(result[k])}" for k in ("added", "removed", "changed") if result.get(k)
        ]
        print(
            "rules reloaded (published)"
            + ("; " + "; ".join(changes) if changes else "; no changes")
        )
        print(f"set {result.get('set_digest', '')} (miaopi rules show --digest ...)")
    else:
        print("publication REFUSED, the previous rules keep serving:")
    for d in result.get("diagnostics", []):
        print(f"  {d}")
    return OK if result.get("applied") else FAILED


def _cmd_status(args: argparse.Namespace) -> int:
    with _client(args, args.target, "admin") as c:
        status = c.ruleset_status()
    if args.json:
        print_json(status)
        return OK
    last = status.get("last_reload", {})
    print(f"serving {status.get('catalog_digest', '')} since {status.get('loaded_at', '')}")
    state = "applied" if last.get("applied") else "REFUSED"
    print(f"last reload {status.get('last_reload_at', '')}: {state}")
    for d in last.get("diagnostics", []):
        print(f"  {d}")
    return OK


def _read_key(spec: Path) -> bytes:
    """Raw Ed25519 public key from a PEM file (as `miaopi audit key` writes it)."""
    from cryptography.exceptions import UnsupportedAlgorithm

    from miaopi_server.offline import public_key_from_pem

    try:
        pem = spec.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"cannot read key {spec}: {exc}") from None
    try:
        return public_key_from_pem(pem)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise BadInput(f"key {spec}: not an Ed25519 public key in PEM: {exc}") from None


def _print_verification(v: dict[str, Any], as_json: bool) -> int:
    if as_json:
        print_json(v)
    else:
        print(render.audit_verification(v))
    return OK if v["ok"] else FAILED


def _offline_source(args: argparse.Namespace) -> tuple[str, Any]:
    """The offline trail a command names (--db FILE or --store DSN; argparse keeps them
    apart), checked against --target: ("--db", path), ("--store", dsn) or ("", None)."""
    if getattr(args, "store", None) is not None:
        if not args.store.startswith(("postgresql://", "postgres://")):
            # The value is not echoed: a mistyped DSN may still carry a password.
            raise BadInput(
                "--store: expected a PostgreSQL DSN, postgresql://USER@HOST:PORT/DB "
                "(a SQLite file is --db FILE)"
            )
        _offline_or_server(args, "--store", args.store)
        return "--store", args.store
    _offline_or_server(args, "--db", args.db)
    return ("--db", args.db) if args.db is not None else ("", None)


def _cmd_audit_verify(args: argparse.Namespace) -> int:
    option, source = _offline_source(args)
    if source is None:
        if args.keys:
            raise BadInput(
                "--key is for offline verification with --db or --store; a server verifies "
                "with its own key"
            )
        with _client(args, args.target, "supervisor") as c:
            return _print_verification(c.verify_audit_trail(args.from_seq, args.to_seq), args.json)
    import sqlite3

    from miaopi_server.offline import (
        AuditUnavailable,
        key_id_of,
        read_witness,
        verify_database,
        witness_path,
    )

    if not args.keys:
        raise BadInput(
            "a public key is needed for offline verification: --key PEM "
            "(the server's sealing key: `miaopi audit key --out seal.pub.pem`)"
        )
    if option == "--db" and not args.db.is_file():
        raise BadInput(f"cannot open audit database {args.db}: no such file")
    keys = {key_id_of(raw): raw for raw in (_read_key(k) for k in args.keys)}
    witness_file = args.witness or (witness_path(args.db) if option == "--db" else None)
    try:
        witness = read_witness(witness_file) if witness_file is not None else None
    except (OSError, ValueError) as exc:
        raise BadInput(str(exc)) from None
    if args.witness and witness is None:
        raise BadInput(f"cannot read witness {args.witness}: no such file")
    if witness is None and not args.no_witness:
        # Without the latest signed head, a copy that lost its newest records (or was rolled
        # back) verifies as a shorter trail: say so instead of passing it.
        if option == "--store":
            raise BadInput(
                "--store needs a witness: --witness FILE (a node's <state-dir>/"
                "audit.witness.json, the latest head it signed or saw), or --no-witness to "
                "check the database on its own (a rolled-back database would verify)"
            )
        assert witness_file is not None
        raise BadInput(
            f"no witness beside {args.db} ({witness_file.name}): a truncated or rolled-back "
            "copy would verify; give --witness FILE, or --no-witness to check the database "
            "on its own"
        )
    try:
        if option == "--store":
            # PostgreSQL's driver is loaded for --store only (a --db check's start-up doubled).
            from miaopi_server.offline import verify_store

            result = verify_store(source, keys, args.from_seq or 1, args.to_seq, witness)
        else:
            # A large trail is checked by one worker process per core (no threads here).
            result = verify_database(
                args.db, keys, args.from_seq or 1, args.to_seq, witness, parallel=True
            )
    except sqlite3.Error as exc:
        raise BadInput(f"cannot read audit database {args.db}: {exc}") from None
    except AuditUnavailable as exc:  # the message names the database without its password
        raise BadInput(str(exc)) from None
    return _print_verification(
        {
            "ok": result.ok,
            "checked": result.checked,
            "first_bad_seq": result.first_bad_seq,
            "reason": result.reason,
            "purged": result.purged,
        },
        args.json,
    )


def _cmd_audit_purge(args: argparse.Namespace) -> int:
    import datetime as dt
    from zoneinfo import ZoneInfo

    try:
        day = dt.date.fromisoformat(args.before)
    except ValueError:
        raise BadInput(f"--before {args.before!r}: expected a date, YYYY-MM-DD") from None
    before = dt.datetime.combine(day, dt.time(), ZoneInfo("Asia/Shanghai"))
    with _client(args, args.target, "admin") as c:
        done = c.purge_cases(before)
    print(
        f"purged the cases of {done['purged']} decision(s) made before {day} (Asia/Shanghai); "
        f"recorded as seq {done['seq']}"
    )
    return OK


def _read_json(spec: Path, what: str) -> Any:
    try:
        text = sys.stdin.read() if str(spec) == "-" else spec.read_text(encoding="utf-8")
        return json.loads(text)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadInput(f"cannot read {what} {spec}: {exc}") from None
    except (ValueError, RecursionError) as exc:  # valid JSON Python will not build
        raise BadInput(f"cannot read {what} {spec}: invalid JSON: {unbuildable(exc)}") from None


def _not_consistent(as_json: bool, first: int, reason: str) -> int:
    """No later signed tree to check against (none, incomplete, or shorter than `first`)."""
    if as_json:
        print_json({"ok": False, "reason": reason, "first": first, "second": 0, "proof": []})
    else:
        print(f"NOT consistent: {reason}")
    return FAILED


def _cmd_audit_prove_consistency(args: argparse.Namespace) -> int:
    from .consistency import check_consistency, head_from_json, saved_head

    try:
        first = saved_head(_read_json(args.file, "tree head"))
    except ValueError as exc:
        raise BadInput(f"{args.file}: {exc}") from None
    option, source = _offline_source(args)
    keys = [_read_key(k) for k in args.keys]
    if option:
        import sqlite3

        from miaopi_server.offline import AuditUnavailable

        if not keys:
            raise BadInput(f"a public key is needed with {option}: --key PEM")
        try:
            if option == "--store":  # PostgreSQL's driver only for --store
                from miaopi_server.offline import store_consistency

                second, path = store_consistency(source, first.tree_size)
            else:
                from miaopi_server.offline import database_consistency

                if not args.db.is_file():
                    raise BadInput(f"cannot open audit database {args.db}: no such file")
                second, path = database_consistency(args.db, first.tree_size)
        except ValueError as exc:
            return _not_consistent(args.json, first.tree_size, str(exc))
        except sqlite3.Error as exc:
            raise BadInput(f"cannot read audit database {args.db}: {exc}") from None
        except AuditUnavailable as exc:  # the message names the database without its password
            raise BadInput(str(exc)) from None
        proof = [h.hex() for h in path]
    else:
        with _client(args, args.target, "supervisor") as c:
            if not keys:
                keys = [c.seal_key()["public_key"]]
            try:
                got = c.consistency_proof(first.tree_size)
            except ClientError as exc:
                if exc.code != "INVALID_ARGUMENT":
                    raise
                return _not_consistent(args.json, first.tree_size, exc.message)
        second, proof = head_from_json(got["second"]), got["proof"]
    check = check_consistency(first, second, proof, keys)
    if args.json:
        print_json({"ok": check.ok, "reason": check.reason, "first": check.first,
                    "second": check.second, "proof": proof})  # fmt: skip
    elif check.ok:
        print(
            f"consistent: the signed tree of {check.first} records (root "
            f"{first.root_hash[:16]}) is a prefix of the signed tree of {check.second} records "
            f"(root {second.root_hash[:16]})"
        )
    else:
        print(f"NOT consistent: {check.reason}")
    return OK if check.ok else FAILED


def _write_text(out: Path | None, text: str) -> None:
    if out is None:
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    try:
        out.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise BadInput(f"cannot write {out}: {exc}") from None


def _write_lines(out: Path | None, lines: Iterable[str]) -> int:
    """Write `lines` as they come (a trail read from a database is streamed, not held), to
    stdout or to `out` through a temporary file renamed at the end, so a read that fails
    midway leaves no partial file; how many were written."""
    if out is None:
        count = 0
        for count, line in enumerate(lines, 1):  # noqa: B007 - the count is the result
            sys.stdout.write(line)
        sys.stdout.flush()
        return count
    part = out.with_name(out.name + ".part")
    try:
        with part.open("w", encoding="utf-8") as f:
            count = 0
            for count, line in enumerate(lines, 1):  # noqa: B007
                f.write(line)
        part.replace(out)
    except OSError as exc:
        part.unlink(missing_ok=True)
        raise BadInput(f"cannot write {out}: {exc}") from None
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    return count


def _cmd_audit_export(args: argparse.Namespace) -> int:
    from .audit import (
        AuditSourceError,
        export_cases,
        records_from_db,
        records_from_server,
        records_from_store,
    )

    def lines(records: Iterable[dict[str, Any]]) -> Iterator[str]:
        return (json.dumps(case, ensure_ascii=False) + "\n" for case in export_cases(records))

    option, source = _offline_source(args)
    try:
        if option == "--store":
            count = _write_lines(args.out, lines(records_from_store(source, args.item)))
        elif option == "--db":
            count = _write_lines(args.out, lines(records_from_db(source, args.item)))
        else:
            with _client(args, args.target, "supervisor") as c:
                count = _write_lines(args.out, lines(records_from_server(c, args.item)))
    except AuditSourceError as exc:
        raise BadInput(str(exc)) from None
    where = f" to {args.out}" if args.out else ""
    print(f"exported {count} case(s){where}", file=sys.stderr)
    return OK


def _cmd_audit_key(args: argparse.Namespace) -> int:
    with _client(args, args.target, "supervisor") as c:
        key = c.seal_key()
    _write_text(args.out, key["public_key_pem"])
    if args.out:
        print(f"seal key {key['key_id']} written to {args.out}", file=sys.stderr)
    return OK


def _cmd_verify_receipt(args: argparse.Namespace) -> int:
    from .receipts import receipt_key_id, verify_receipt

    _offline_or_server(args, "--key", args.keys or None)
    spec = str(args.file)
    text, pdf = read_saved_decision(spec, args.file)
    duplicates: list[str] = []

    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        keys = [k for k, _ in pairs]
        duplicates.extend(k for n, k in enumerate(keys) if k in keys[:n])
        return dict(pairs)

    try:
        saved = json.loads(text, object_pairs_hook=no_duplicates)
    except json.JSONDecodeError as exc:
        raise BadInput(f"decision {spec}: invalid JSON: {exc}") from None
    except (ValueError, RecursionError) as exc:
        raise BadInput(f"decision {spec}: invalid JSON: {unbuildable(exc)}") from None
    if duplicates:  # a reader could take either value: the file says two things
        print(f"receipt FAILED: duplicate key {duplicates[0]!r}, the decision is ambiguous")
        return FAILED
    if not isinstance(saved, dict):
        raise BadInput(f"decision {spec}: must be a JSON object (a saved decision)")
    if args.keys:
        from miaopi_server.offline import key_id_of

        keys = [_read_key(k) for k in args.keys]
        # With several keys (rotation), check with the one the receipt names, if given.
        claimed = receipt_key_id(saved)
        public = next((k for k in keys if key_id_of(k) == claimed), keys[0])
    else:
        with _client(args, args.target, "supervisor") as c:
            public = c.seal_key()["public_key"]
    check = verify_receipt(saved, public)
    where = f" (seq {check.seq})" if check.seq else ""
    if not check.ok:
        print(f"receipt FAILED{where}: {check.reason}")
        return FAILED
    if pdf is not None:
        from miaopi_server.offline import printed_mismatch

        # The attachment is sealed; the page around it is not: it must show that decision.
        problem = printed_mismatch(pdf, saved)
        if problem:
            print(f"receipt FAILED{where}: {problem}")
            return FAILED
    print(f"receipt OK: seq {check.seq} sealed by {check.key_id}")
    if pdf is not None:
        from miaopi_server.offline import sealed_summary

        # The seal covers the attachment, not the pages (text can be hidden on a page).
        print(f"sealed: {sealed_summary(saved)}")
        print(
            f"the printed pages are not sealed: compare them with this line, or print a "
            f"trusted copy: miaopi notice --from {spec} --pdf copy.pdf"
        )
    return OK


def _rpc_error(exc: ClientError, target: str) -> int:
    if exc.code == "INVALID_ARGUMENT":
        err(f"INVALID_ARGUMENT: {_one_line(exc.message)}")
        for field, description in exc.violations:
            print(f"  {field}: {description}", file=sys.stderr)
        return BAD_INPUT
    if exc.code == "NOT_FOUND":
        err(f"NOT_FOUND: {_one_line(exc.message)}")
        return NOT_FOUND
    if exc.code in ("UNAVAILABLE", "DEADLINE_EXCEEDED"):
        err(f"cannot reach server at {target} ({exc.code}): {_one_line(exc.message)}")
        return FAILED
    err(f"{exc.code}: {_one_line(exc.message)}")
    return FAILED


def _jobs(s: str) -> int:
    try:
        n = int(s)
    except ValueError:
        n = -1
    if n < 0:
        raise argparse.ArgumentTypeError(f"not a number of processes (0: automatic): {s!r}")
    return n


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="miaopi",
        description="秒批 instant approval client. Connection options (--target, --token, "
        "--token-file, --tls-*, --timeout, --dev-tokens) go before or after the command, "
        "at any level: `miaopi --target X replay f` and `miaopi replay f --target X` agree.",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser(
        "reload",
        help="publish the server's rules directory as it is now (admin)",
        description="Publishing is deliberate: editing the served files changes nothing until "
        "this (or SIGHUP). The set must pass the compile gate and its own rule tests; it is "
        "archived and recorded, then goes live. Same as `miaopi rules publish`.",
    )
    s.add_argument("--json", action="store_true", help="print JSON")
    s.set_defaults(run=_cmd_reload)

    s = sub.add_parser("status", help="which rule set is serving, and the last reload (admin)")
    s.add_argument("--json", action="store_true", help="print JSON")
    s.set_defaults(run=_cmd_status)

    s = sub.add_parser("items", help="list the items the server decides")
    s.add_argument("--json", action="store_true", help="print JSON")
    s.set_defaults(run=_cmd_items)

    s = sub.add_parser("item", help="show one item: form, materials, legal basis")
    s.add_argument("code", metavar="CODE")
    s.add_argument("--json", action="store_true", help="print JSON")
    s.set_defaults(run=_cmd_item)

    s = sub.add_parser("decide", help="decide one case")
    s.add_argument("--item", required=True, metavar="CODE", help="item code")
    s.add_argument(
        "--facts", required=True, metavar="FILE", help='JSON object of facts; "-" reads stdin'
    )
    s.add_argument("--materials", default="", metavar="A,B,C", help="submitted material ids")
    s.add_argument("--request-id", default="", metavar="ID")
    _add_window_id(s, "window the case is sent as (default: the one the server authenticates)")
    s.add_argument("--operator-id", default="", metavar="ID")
    s.add_argument(
        "--consent",
        default="",
        metavar="REF",
        help="reference of the applicant's authorisation (授权) to look up their data in "
        "shared sources; without it the case is decided on its own facts",
    )
    s.add_argument(
        "--dry-run",
        action="store_true",
        help="decide without recording a decision (DryRunDecide: supervisor or admin token); "
        "the dry run itself is recorded as an event",
    )
    s.add_argument("--json", action="store_true", help="print the decision as JSON")
    s.set_defaults(run=_cmd_decide)

    s = sub.add_parser(
        "replay",
        help="replay a JSONL case file and check every expectation",
        description="In-process with --rulesets; on a server (--target) each case is a real "
        "decision, recorded and sealed, unless --dry-run.",
    )
    s.add_argument("cases", type=Path, metavar="CASES.jsonl")
    s.add_argument(
        "--rulesets",
        type=Path,
        metavar="DIR",
        help="decide in-process with these rule files, no server (instead of --target)",
    )
    s.add_argument(
        "--today",
        type=date_arg,
        metavar="YYYY-MM-DD",
        help="date for cases without application.date (in-process only)",
    )
    s.add_argument(
        "--jobs",
        dest="replay_jobs",  # `rules diff` has its own --jobs
        type=_jobs,
        metavar="N",
        help=f"worker processes for --rulesets (default 0: one per CPU for "
        f"{PARALLEL_MIN_CASES}+ cases; 1: none)",
    )
    s.add_argument(
        "--junit",
        type=Path,
        metavar="FILE",
        help="also write the report as JUnit XML (a testsuite per item, a testcase per case)",
    )
    s.add_argument(
        "--refetch",
        action="store_true",
        help="look recorded cases up again in today's shared data instead of deciding on the "
        "values recorded with them (in-process: in --registry; on a server: in its own)",
    )
    s.add_argument(
        "--registry",
        type=Path,
        metavar="DIR",
        help="registry data directory for --refetch with --rulesets",
    )
    _add_window_id(s, "window the cases are sent as (default: the one the server authenticates)")
    s.add_argument(
        "--dry-run",
        action="store_true",
        help="on a server, decide every case without recording it (DryRunDecide: supervisor "
        "or admin token; each dry run is an event on the record), on its recorded lookups. "
        "Without it every replayed case is a real, sealed decision",
    )
    s.add_argument("--json", action="store_true", help="print the report as JSON")
    s.set_defaults(run=_cmd_replay)

    _add_audit_parsers(sub)
    add_rules_parsers(sub, lambda args, role: _client(args, args.target, role), _cmd_reload)
    add_review_parsers(sub, lambda args, role: _client(args, args.target, role))
    add_kpi_parser(sub, lambda args, role: _client(args, args.target, role))
    add_alerts_parser(sub, lambda args, role: _client(args, args.target, role))
    add_notice_parser(sub, lambda args, role: _client(args, args.target, role))
    _everywhere(p, _add_connection)
    _add_window_id(p, "for decide and replay: the window to send cases as")
    return p


WINDOW_COMMANDS = ("decide", "replay")  # the commands that send cases as a window


def _add_window_id(p: argparse.ArgumentParser, help: str) -> None:
    """--window-id, before the command or after it (no default of its own, as the connection
    options: `_connection_defaults` gives "")."""
    p.add_argument("--window-id", default=argparse.SUPPRESS, metavar="ID", help=help)


def _add_connection(p: argparse.ArgumentParser) -> None:
    """The connection options. Every parser of the tree has them with no default of its own
    (SUPPRESS): a subcommand's parser then leaves what an outer position set alone, and
    `_connection_defaults` fills in what no position gave."""
    group = p.add_argument_group("connection (before or after the command)")
    opt = argparse.SUPPRESS
    group.add_argument(
        "--target",
        default=opt,
        metavar="HOST:PORT",
        help=f"server HOST:PORT (env MIAOPI_TARGET, default {DEFAULT_TARGET})",
    )
    group.add_argument("--timeout", type=float, default=opt, help="seconds per RPC (default 10)")
    group.add_argument(
        "--token",
        default=opt,
        help="bearer token (env MIAOPI_TOKEN; default: the development token "
        "for the command's role from --dev-tokens)",
    )
    group.add_argument(
        "--token-file",
        type=Path,
        default=opt,
        metavar="FILE",
        help="file holding the bearer token (keeps it out of `ps`)",
    )
    group.add_argument(
        "--dev-tokens",
        default=opt,
        metavar="FILE",
        help="development tokens written by miaopi-server (env MIAOPI_DEV_TOKENS, default "
        "var/dev-tokens.json)",
    )
    group.add_argument("--tls-ca", type=Path, default=opt, help="CA (PEM) to trust: use TLS")
    group.add_argument("--tls-cert", type=Path, default=opt, help="client certificate (mutual TLS)")
    group.add_argument("--tls-key", type=Path, default=opt, help="client private key (mutual TLS)")


def _everywhere(p: argparse.ArgumentParser, add: Any) -> None:
    """Apply `add` to `p` and to every subcommand's parser below it, at any depth."""
    add(p)
    for action in p._actions:  # argparse keeps its subparsers here, and nowhere public
        if isinstance(action, argparse._SubParsersAction):
            # A parser above a command sees the command's words too: abbreviating there would
            # make its own options (`audit verify --to`) ambiguous with --token, --token-file.
            p.allow_abbrev = False
            for child in dict.fromkeys(action.choices.values()):  # aliases share a parser
                _everywhere(child, add)


def _connection_defaults(args: argparse.Namespace) -> None:
    """Fill in the connection options no position gave; `target_given` says whether the
    command line named a server (an offline option such as --db or --rulesets excludes it)."""
    args.target_given = hasattr(args, "target")
    defaults = {
        "target": os.environ.get("MIAOPI_TARGET", DEFAULT_TARGET),
        "timeout": 10.0,
        "token": None,
        "token_file": None,
        "dev_tokens": os.environ.get("MIAOPI_DEV_TOKENS", "var/dev-tokens.json"),
        "tls_ca": None,
        "tls_cert": None,
        "tls_key": None,
    }
    for name, value in defaults.items():
        if not hasattr(args, name):
            setattr(args, name, value)
    if hasattr(args, "window_id") and args.command not in WINDOW_COMMANDS:
        raise BadInput(f"--window-id is for {' and '.join(WINDOW_COMMANDS)}, not {args.command}")
    args.window_id = getattr(args, "window_id", "")


def _offline_or_server(args: argparse.Namespace, offline: str, value: Any) -> None:
    """An offline source (--db FILE, --rulesets DIR) and --target name two places to work on."""
    if value is not None and args.target_given:
        raise BadInput(f"give --target or {offline}, not both")


def _add_keys(s: Any, default: str = "") -> None:
    """--key PEM, repeatable: the public sealing keys a check accepts."""
    s.add_argument(
        "--key",
        dest="keys",
        type=Path,
        action="append",
        default=[],
        metavar="PEM",
        help=f"public sealing key (repeat for rotated keys{default})",
    )


def _add_audit_parsers(sub: Any) -> None:
    audit = sub.add_parser("audit", help="check and export the audit trail, get the seal key")
    asub = audit.add_subparsers(dest="audit_command", required=True, metavar="COMMAND")

    s = asub.add_parser(
        "verify",
        help="re-check the hash chain and seals of the audit trail",
        description="Offline with --db or --store and --key, or by the server (--target).",
    )
    source = s.add_mutually_exclusive_group()
    source.add_argument(
        "--db",
        type=Path,
        metavar="FILE",
        help="audit database (or a copy), checked offline, instead of --target; needs --key",
    )
    source.add_argument(
        "--store",
        metavar="DSN",
        help="PostgreSQL trail (postgresql://USER@HOST:PORT/DB) checked directly, read-only, "
        "instead of --target; needs --key and --witness FILE (or --no-witness)",
    )
    _add_keys(s)
    s.add_argument(
        "--from",
        dest="from_seq",
        type=seq_arg,
        default=0,
        metavar="N",
        help="first sequence number (default 1)",
    )
    s.add_argument(
        "--to",
        dest="to_seq",
        type=seq_arg,
        default=0,
        metavar="N",
        help="last sequence number (default: the latest)",
    )
    s.add_argument(
        "--witness",
        type=Path,
        metavar="FILE",
        help="signed tree head the trail must extend (default: audit.witness.json beside --db; "
        "with --store: a node's <state-dir>/audit.witness.json)",
    )
    s.add_argument(
        "--no-witness",
        action="store_true",
        help="check a database that has no witness (a backup): truncation cannot be detected",
    )
    s.add_argument("--json", action="store_true", help="print the result as JSON")
    s.set_defaults(run=_cmd_audit_verify)

    s = asub.add_parser(
        "purge",
        help="erase the cases (facts) of decisions made before a date; recorded in the trail",
        description="After the retention period: the records stay and still verify (they "
        "commit to each case's digest); the facts are erased. Needs the admin role.",
    )
    s.add_argument(
        "--before", required=True, metavar="DATE", help="YYYY-MM-DD, midnight Asia/Shanghai"
    )
    s.set_defaults(run=_cmd_audit_purge)

    s = asub.add_parser(
        "prove-consistency",
        help="check that the trail still holds every record a saved tree head signed",
        description="FILE: a saved decision (its receipt's tree head), or a tree head such as "
        "the witness file. The server (--target) or a database (offline, needs --key: --db, "
        "or --store for a PostgreSQL trail) proves that its latest signed tree extends it "
        "(RFC 9162).",
    )
    s.add_argument("file", type=Path, metavar="FILE", help='saved decision or head; "-": stdin')
    source = s.add_mutually_exclusive_group()
    source.add_argument(
        "--db", type=Path, metavar="FILE", help="audit database (or a copy), instead of --target"
    )
    source.add_argument(
        "--store",
        metavar="DSN",
        help="a shared PostgreSQL trail, read-only: postgresql://USER@HOST:PORT/DB",
    )
    _add_keys(s, "; default: the server's")
    s.add_argument("--json", action="store_true", help="print the result as JSON")
    s.set_defaults(run=_cmd_audit_prove_consistency)

    s = asub.add_parser("export", help="export recorded decisions as a replay case file")
    source = s.add_mutually_exclusive_group()
    source.add_argument(
        "--db", type=Path, metavar="FILE", help="audit database (or a copy), instead of --target"
    )
    source.add_argument(
        "--store",
        metavar="DSN",
        help="PostgreSQL trail (postgresql://USER@HOST:PORT/DB), read directly, instead of "
        "--target",
    )
    s.add_argument("--item", default="", metavar="CODE", help="only this item")
    s.add_argument("--out", type=Path, metavar="FILE", help="write here (default stdout)")
    s.set_defaults(run=_cmd_audit_export)

    s = asub.add_parser("key", help="write the public sealing key (PEM) for offline checks")
    s.add_argument("--out", type=Path, metavar="FILE", help="write here (default stdout)")
    s.set_defaults(run=_cmd_audit_key)

    s = sub.add_parser(
        "verify-receipt",
        help="check a saved decision (decide --json) or a notice PDF against its e-seal",
    )
    s.add_argument(
        "file",
        type=Path,
        metavar="FILE",
        help='saved decision, or a notice PDF (miaopi notice --pdf); "-" reads stdin (JSON)',
    )
    _add_keys(s, "; instead of asking the server, --target")
    s.set_defaults(run=_cmd_verify_receipt)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if getattr(args, "today", None) and getattr(args, "rulesets", None) is None:
            parser.error("--today needs --rulesets: a server decides with its own clock")
    except SystemExit as exc:  # argparse exits on usage errors and --help
        return exc.code if isinstance(exc.code, int) else BAD_INPUT
    try:
        _connection_defaults(args)
        return int(args.run(args))
    except ClientError as exc:
        return _rpc_error(exc, args.target)
    except CaseFileError as exc:
        err("bad case file:")
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return BAD_INPUT
    except BadInput as exc:
        err(str(exc))
        return BAD_INPUT
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `miaopi items | head`: the reader left, not an error worth a trace
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - stops the flush at exit from failing
        return FAILED


if __name__ == "__main__":
    sys.exit(main())
