"""Build hook: copy the widgets' front-end sources (top-level `widgets/`) into the package.

All metadata lives in pyproject.toml. The ES modules and CSS are written in this
project and kept once, in `widgets/`; a wheel or sdist build copies them into
`labkit/widgets/static/` so an installed labkit finds them without the source tree.
An editable install reads them from `widgets/` directly (see labkit/frontend/assets.py).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

FRONT_END = Path(__file__).resolve().parent / "widgets"


class build_py_with_widgets(build_py):
    def run(self) -> None:
        super().run()
        target = Path(self.build_lib) / "labkit" / "widgets" / "static"
        target.mkdir(parents=True, exist_ok=True)
        for source in sorted(FRONT_END.glob("*")):
            if source.suffix in {".js", ".css"}:
                shutil.copy2(source, target / source.name)


setup(cmdclass={"build_py": build_py_with_widgets})
