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

// Base64 text -> bytes (binary payloads travel as base64 in widget state and static pages).
export function base64ToBytes(b64) {
  const bin = atob(b64);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

// One IEEE float16 (as its 16-bit integer) -> a JavaScript number; subnormals, infinities and NaN included.
export function halfToFloat(h) {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24; // subnormal (and zero)
  if (exp === 31) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

// A labelled <select> of numbered choices (layer, head): options [[value, text], ...], `value` preselected;
// onChange gets the chosen value back as a number.
export function numberSelect(cls, label, options, value, onChange) {
  const wrap = el("label", cls, label + " ");
  const s = el("select");
  options.forEach(([v, text]) => {
    const o = el("option", null, text);
    o.value = String(v);
    if (v === value) o.selected = true;
    s.appendChild(o);
  });
  s.addEventListener("change", () => onChange(Number(s.value)));
  wrap.appendChild(s);
  return wrap;
}

// Static pages (labkit.frontend.live_view_html): the inlined script finds its container next to itself, mounts
// the spec in `<prefix>-data` into `<prefix>-live` with the module's `mount`, and hides the `<prefix>-static`
// fallback. Some hosts run inline scripts detached from their place (jQuery-style eval), so it falls back to the id.
export function mountLiveView(script, id, prefix, mount) {
  let box = script && script.parentNode;
  if (!box || !box.querySelector || !box.querySelector(`.${prefix}-live`)) box = document.getElementById(id);
  const host = box && box.querySelector(`.${prefix}-live`);
  const data = box && box.querySelector(`script.${prefix}-data`);
  if (!host || !data || host.dataset.mounted) return;
  host.dataset.mounted = "1";
  mount(host, JSON.parse(data.textContent));
  const fallback = box.querySelector(`.${prefix}-static`);
  if (fallback) fallback.style.display = "none";
}
