"""labkit.notebooks: the report runner (typed parameters, papermill execution, offline HTML reports),
recorded results, sweeps and the gallery."""

from labkit.lazy import lazy_exports

_EXPORTS = {
    "run_notebook": "runner",
    "RunResult": "runner",
    "stop_running_notebooks": "runner",
    "read_parameters": "parameters",
    "Parameter": "parameters",
    "export_html": "report",
    "record": "results",
    "collect": "results",
    "sweep": "sweep",
    "SweepResult": "sweep",
    "build_gallery": "gallery",
    "GalleryResult": "gallery",
    "read_gallery": "gallery",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
