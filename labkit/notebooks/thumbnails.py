"""Gallery thumbnails: a screenshot of each lesson's main view, taken in headless Chromium from its offline page.

A lesson marks its main view by tagging the code cell that displays it `main-view` (in JupyterLab: the
property inspector's cell tags; in the .ipynb: `"metadata": {"tags": ["main-view"]}`). nbconvert turns the
tag into the class `celltag_main-view`, and the screenshot is of that cell's output once it has drawn.
Without the tag the first output that draws a widget, a view, a figure or an image is used.

Chromium (`/usr/bin/chromium`, or `$LABKIT_CHROMIUM`) is driven through Python's playwright, as the browser
tests do; pages are opened from disk with every request off the machine refused. Without either the
caller falls back to a picture the notebook already holds (see `labkit.notebooks.gallery`).
"""

from __future__ import annotations

import base64
import importlib.util
import os
import shutil
import warnings
from collections.abc import Mapping
from pathlib import Path

MAIN_VIEW_TAG = "main-view"
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run", "--disable-sync"]
# The output of the cell tagged main-view, in a page nbconvert wrote (tags become `celltag_<tag>` classes).
MAIN_VIEW_SELECTOR = f".celltag_{MAIN_VIEW_TAG} .jp-OutputArea-output"
# What counts as a drawn view when no cell is tagged: widgets, labkit's views, plotly, bertviz, images.
DRAWN_SELECTOR = (
    ".jp-OutputArea-output:has(.widget-subarea .lm-Widget, .labkit-attn, .labkit-am, .labkit-tok, .labkit-lora,"
    " .js-plotly-plot, iframe, canvas, img, svg)"
)
_MAX_HEIGHT = 640  # CSS pixels of a tall view that the thumbnail keeps (its top)
# The drawn part of an output, in page coordinates: the union of its leaves (text, images, canvases, svg, leaf
# elements), so the full-width wrappers around a narrow view do not turn the thumbnail into white margin.
_CONTENT_BOX = """el => {
  const outer = el.getBoundingClientRect();
  let l = Infinity, t = Infinity, r = -Infinity, b = -Infinity;
  const add = (box) => {
    if (box.width < 1 || box.height < 1) return;
    l = Math.min(l, box.left); t = Math.min(t, box.top); r = Math.max(r, box.right); b = Math.max(b, box.bottom);
  };
  const walker = document.createTreeWalker(el, NodeFilter.SHOW_ELEMENT | NodeFilter.SHOW_TEXT);
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    if (n.nodeType === Node.TEXT_NODE) {
      if (n.textContent.trim()) { const range = document.createRange(); range.selectNodeContents(n); add(range.getBoundingClientRect()); }
    } else if (n.children.length === 0 || ['svg', 'canvas', 'img', 'iframe', 'video'].includes(n.tagName.toLowerCase())) {
      if (getComputedStyle(n).visibility !== 'hidden') add(n.getBoundingClientRect());
    }
  }
  if (l === Infinity) { l = outer.left; t = outer.top; r = outer.right; b = outer.bottom; }
  const pad = 6;
  l = Math.max(outer.left, l - pad); t = Math.max(outer.top, t - pad);
  r = Math.min(outer.right, r + pad); b = Math.min(outer.bottom, b + pad);
  return {x: l + window.scrollX, y: t + window.scrollY, width: r - l, height: b - t};
}"""


def chromium_executable() -> str | None:
    """Path of the Chromium the thumbnails use (`$LABKIT_CHROMIUM`, /usr/bin/chromium, or on PATH), or None."""
    for candidate in (os.environ.get("LABKIT_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def screenshots_unavailable() -> str | None:
    """Why thumbnails cannot be screenshots here (no playwright, no Chromium), or None when they can."""
    if importlib.util.find_spec("playwright") is None:
        return "Python playwright is not installed (pip install 'labkit[dev]')"
    if chromium_executable() is None:
        return "no Chromium found (install Debian's chromium, or set LABKIT_CHROMIUM)"
    return None


def settle(page, locator, timeout_ms: int = 30_000) -> None:
    """Wait until the element has a size and keeps it for half a second (widgets and plots draw late)."""
    deadline = timeout_ms
    last = None
    while deadline > 0:
        box = locator.bounding_box()
        size = (round(box["width"]), round(box["height"])) if box else None
        if size and size[1] > 20 and size == last:
            return
        last = size
        page.wait_for_timeout(500)
        deadline -= 500


def main_view(page, timeout_ms: int = 15_000):
    """A Playwright page of a report in, the locator of its main view's output out (None when nothing draws).

    The output of the cell tagged main-view; else the first drawn output at least 100 px tall once drawn (a
    progress bar is not a view), else the first drawn output.
    """
    tagged = page.locator(MAIN_VIEW_SELECTOR)
    if tagged.count():
        return tagged.first
    drawn = page.locator(DRAWN_SELECTOR)
    for _ in range(max(1, timeout_ms // 500)):
        if drawn.count() == 0:
            return None
        heights = drawn.evaluate_all("els => els.map(e => e.getBoundingClientRect().height)")
        tall = next((i for i, h in enumerate(heights) if h >= 100), None)
        if tall is not None:
            return drawn.nth(tall)
        page.wait_for_timeout(500)
    return drawn.first


def screenshot_thumbnails(pages: Mapping[str, Path], *, timeout_s: float = 30.0) -> dict[str, str]:
    """Lesson name -> offline page in, lesson name -> JPEG data: URL of its main view out (pages with no view left out).

    Raises RuntimeError naming the fix when playwright or Chromium is missing (see `screenshots_unavailable`).
    """
    reason = screenshots_unavailable()
    if reason:
        raise RuntimeError(f"cannot take gallery screenshots: {reason}")
    # Playwright's sync API refuses to start in a thread with a running event loop (a Jupyter kernel, or a caller
    # already driving Playwright): take the screenshots in a thread of their own, which has none.
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(_screenshot_pages, pages, timeout_s).result()


def _screenshot_pages(pages: Mapping[str, Path], timeout_s: float) -> dict[str, str]:
    from playwright.sync_api import sync_playwright

    thumbs: dict[str, str] = {}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_executable(), args=LAUNCH_ARGS)
        try:
            # half-size pixels: a thumbnail needs no more, and its JPEG is a quarter of the bytes
            context = browser.new_context(viewport={"width": 1100, "height": 800}, device_scale_factor=0.5)
            context.route("**/*", lambda route: route.continue_() if _is_local(route.request.url) else route.abort())
            for name, path in pages.items():
                page = context.new_page()
                try:
                    page.goto(Path(path).resolve().as_uri(), wait_until="load", timeout=timeout_s * 1000)
                    target = main_view(page)
                    if target is None:
                        continue
                    target.scroll_into_view_if_needed()
                    settle(page, target, int(timeout_s * 1000))
                    clip = target.evaluate(_CONTENT_BOX)
                    if clip["width"] < 2 or clip["height"] < 2:
                        continue
                    clip["height"] = min(clip["height"], _MAX_HEIGHT)
                    image = page.screenshot(type="jpeg", quality=70, clip=clip, full_page=True)
                    thumbs[name] = "data:image/jpeg;base64," + base64.b64encode(image).decode("ascii")
                except Exception as exc:  # noqa: BLE001 - one page that will not draw must not cost the others theirs
                    warnings.warn(f"no screenshot of {name}: {type(exc).__name__}: {exc}", stacklevel=2)
                finally:
                    page.close()
        finally:
            browser.close()
    return thumbs


def _is_local(url: str) -> bool:
    return url.startswith(("file:", "data:", "blob:", "about:"))
