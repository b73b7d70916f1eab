// Helpers every labkit widget module shares. Each module imports what it needs with
// `import { el } from "./dom.js";`: a browser or node resolves that next to the file, and labkit's
// inliner (labkit.frontend.module_text / classic_script) puts this file's code in front of the module
// for anywidget and for static pages. Keep to `export function` and import nothing here.

// A new element: tag name, optional class name and text (always as textContent, never as HTML).
export function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
}
