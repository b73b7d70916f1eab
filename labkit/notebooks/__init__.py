"""labkit.notebooks: the report runner (typed parameters, papermill execution, offline HTML reports)."""
from labkit._lazy import lazy_exports

_EXPORTS = {
    "run_notebook": "runner",
    "RunResult": "runner",
    "read_parameters": "parameters",
    "Parameter": "parameters",
    "export_html": "report",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
