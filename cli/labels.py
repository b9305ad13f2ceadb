"""``studio labels …``: export preference pairs, import rankings, and the sources' leaderboard (the same services as
the pages).

Wired into ``cli/main.py``'s ``build_parser`` with ``register(sub)``. Services raise StudioError for user
mistakes; the main CLI prints them and exits with status 2.
"""

import argparse
import json

from backend.errors import StudioError

STRATEGIES = ("all", "best-vs-rest", "best-vs-worst")
SHOWN_LINES = 200  # lines of the import report printed (--json prints all)


def _session_scope():
    from backend.db.engine import session_scope, upgrade_database

    upgrade_database()
    return session_scope


def cmd_export(args: argparse.Namespace) -> None:
    from labeling.export import export_campaign

    with _session_scope()() as s:
        report = export_campaign(s, args.campaign, args.out, fmt=args.format, strategy=args.pairs,
                                 margin=args.margin, consensus=args.consensus,
                                 max_disagreement=args.max_disagreement, test_size=args.test_size, seed=args.seed)
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"{report['pairs']} pairs from {report['items']} items ({report['rankings']} rankings"
          + (f", {report['dropped_for_disagreement']} items dropped for disagreement" if args.max_disagreement
             is not None else "") + ")")
    for split, path in report["files"].items():
        print(f"  {split}: {report['rows'][split]} rows -> {path}")


def cmd_import(args: argparse.Namespace) -> None:
    from labeling.importer import import_rankings

    with _session_scope()(write=True) as s:
        report = import_rankings(s, args.file, args.campaign, criterion=args.criterion)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"{report['accepted']} ranking(s) imported into '{report['campaign']}'"
              + (" (new campaign)" if report["created"] else "") + f", {len(report['rejected'])} rejected")
        print_import_lines(report["lines"])
    if report["rejected"] and not report["accepted"]:
        raise StudioError("No row was imported: fix the rows listed above.")


def print_import_lines(lines: list[dict], limit: int = SHOWN_LINES) -> None:
    """The per-line report as a table: refused lines first (they need fixing), then kept ones, ``limit`` at most."""
    shown = sorted(lines, key=lambda r: (r["outcome"] != "refused", r["line"]))[:limit]
    for r in shown:
        where = f"item {r['item_id']} (K={r['k']})" if r["outcome"] == "kept" else ""
        print(f"  line {r['line']:>6}  {r['outcome']:<7}  {where:<18}  {r['detail']}")
    if len(lines) > limit:
        print(f"  … and {len(lines) - limit} more line(s) (use --json for all)")


def cmd_leaderboard(args: argparse.Namespace) -> None:
    from labeling.leaderboard import leaderboard

    if args.resamples < 100 or args.resamples > 100_000:
        raise StudioError("--resamples must be between 100 and 100,000.")
    with _session_scope()() as s:
        board = leaderboard(s, args.campaign, resamples=args.resamples, seed=args.seed)
    if args.json:
        print(json.dumps(board, indent=2))
        return
    print(f"{board['campaign'] or 'All campaigns'}: {board['comparisons']} comparisons on {board['items']} items")
    print(f"  {'source':<40} {'rating':>7}  {'95 % interval':<15} {'comparisons':>11}  win rate")
    for r in board["sources"]:
        print(f"  {r['source'][:40]:<40} {r['rating']:>7.0f}  [{r['low']:>5.0f}, {r['high']:>5.0f}]  "
              f"{r['comparisons']:>11}  {r['win_rate']:.2f}")
    for r in board["rounds"]:
        best = (f"best {r['best_source']} {r['best_rating']:.0f} [{r['best_low']:.0f}, {r['best_high']:.0f}]"
                if r["best_source"] else "no comparisons")
        print(f"  round {r['round']}: {', '.join(r['campaigns'])} — {best}")
    print(f"  ({board['method']}; intervals that overlap do not separate two sources)")


def _share(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError("give a share between 0 and 1")
    return value


def register(subparsers) -> None:
    """Add ``labels export``, ``labels import`` and ``labels leaderboard`` to the studio CLI's subparsers."""
    p = subparsers.add_parser("labels", help="Export preference pairs from rankings; import rankings; the sources' leaderboard.")
    sub = p.add_subparsers(dest="labels_cmd", required=True)

    ex = sub.add_parser("export", help="Write a campaign's rankings as preference pairs (TRL: prompt, chosen, "
                        "rejected, optional margin).")
    ex.add_argument("--campaign", required=True, help="Campaign name.")
    ex.add_argument("--format", choices=["jsonl", "parquet"], default=None,
                    help="File format (default: from the --out suffix, else jsonl).")
    ex.add_argument("--pairs", choices=STRATEGIES, default="all",
                    help="all = every untied pair, C(K,2) per ranking; best-vs-rest; best-vs-worst.")
    ex.add_argument("--margin", action="store_true", help="Add the rank gap of each pair as 'margin'.")
    ex.add_argument("--consensus", action="store_true",
                    help="One consensus ranking per item (mean rank) instead of every annotator's pairs.")
    ex.add_argument("--max-disagreement", type=_share, default=None, metavar="SHARE",
                    help="Drop items whose annotators disagree on more than this share of pairs (e.g. 0.5).")
    ex.add_argument("--test-size", type=_share, default=0.0, metavar="SHARE",
                    help="Hold out this share of prompts; --out is then a folder with train/test files.")
    ex.add_argument("--seed", type=int, default=0, help="Seed of the train/test split by prompt.")
    ex.add_argument("--out", required=True, help="Output file (or folder with --test-size).")
    ex.add_argument("--json", action="store_true", help="Print the report as JSON.")
    ex.set_defaults(func=cmd_export)

    im = sub.add_parser("import", help='Import rankings: one JSON object a line, {"prompt", "completions", '
                        '"ranks", "annotator"} (+ optional "flags"); rank 1 = best, equal ranks tie.')
    im.add_argument("file", help="JSONL file.")
    im.add_argument("--campaign", required=True, help="Campaign name (created when it does not exist).")
    im.add_argument("--criterion", default="helpfulness", help="Criterion of a new campaign.")
    im.add_argument("--json", action="store_true", help="Print the report as JSON.")
    im.set_defaults(func=cmd_import)

    lb = sub.add_parser("leaderboard", help="Bradley–Terry ratings of the completion sources (model × decoding) "
                        "with 95 %% bootstrap intervals, from every pairwise outcome of the rankings.")
    lb.add_argument("--campaign", default=None, help="Campaign name (default: all campaigns together, with their rounds).")
    lb.add_argument("--resamples", type=int, default=1000, help="Bootstrap resamples of items (default 1000).")
    lb.add_argument("--seed", type=int, default=0, help="Seed of the bootstrap.")
    lb.add_argument("--json", action="store_true", help="Print ratings, win-rate matrix and rounds as JSON.")
    lb.set_defaults(func=cmd_leaderboard)
