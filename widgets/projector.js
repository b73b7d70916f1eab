// labkit embedding projector: a 2-D/3-D scatter on a canvas, a search box, a neighbour list, a checkpoint slider.
// Python projects the embeddings and finds cosine neighbours in the original space; this module draws and asks.
// Plain DOM + canvas, no libraries, no network. Token text only goes through textContent and canvas fillText.
// Keep to `export function` / `export const` / `export default` (static pages inline this file as a classic script).

export const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];
const VIRIDIS = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];

// ---------------------------------------------------------------- pure functions (tested with node)

// Bytes (DataView, ArrayBuffer, Uint8Array) of little-endian float32 -> a Float32Array copy (aligned).
export function toFloat32(bytes) {
  if (!bytes) return new Float32Array(0);
  const u8 = bytes instanceof ArrayBuffer ? new Uint8Array(bytes) : new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Float32Array(u8.byteLength >> 2);
  const dv = new DataView(u8.buffer, u8.byteOffset, u8.byteLength);
  for (let i = 0; i < out.length; i++) out[i] = dv.getFloat32(4 * i, true);
  return out;
}

// All frames [frames, n, dims] -> per-axis min/max, the centre, and the largest half-extent (fixed axes for every frame).
export function bounds(all, dims) {
  const lo = new Array(dims).fill(Infinity), hi = new Array(dims).fill(-Infinity);
  for (let i = 0; i < all.length; i++) {
    const a = i % dims;
    if (all[i] < lo[a]) lo[a] = all[i];
    if (all[i] > hi[a]) hi[a] = all[i];
  }
  if (!all.length) { lo.fill(0); hi.fill(0); }
  const centre = lo.map((l, a) => (l + hi[a]) / 2);
  const radius = Math.max(1e-9, ...lo.map((l, a) => (hi[a] - l) / 2));
  return { lo, hi, centre, radius };
}

// A centred point [x, y, z] turned by yaw (around the vertical axis) then pitch -> [x, y, depth].
export function rotate(x, y, z, yaw, pitch) {
  const cy = Math.cos(yaw), sy = Math.sin(yaw), cp = Math.cos(pitch), sp = Math.sin(pitch);
  const x1 = x * cy + z * sy, z1 = -x * sy + z * cy;
  return [x1, y * cp - z1 * sp, y * sp + z1 * cp];
}

// One frame's coords [n * dims] -> screen positions [n * 3] (x, y, depth); aspect ratio kept, y up.
export function screenPoints(coords, dims, b, view) {
  const n = coords.length / dims, out = new Float32Array(3 * n);
  const scale = (0.45 * Math.min(view.width, view.height) / b.radius) * (view.zoom || 1);
  for (let i = 0; i < n; i++) {
    const x = coords[i * dims] - b.centre[0], y = coords[i * dims + 1] - b.centre[1];
    const z = dims === 3 ? coords[i * dims + 2] - b.centre[2] : 0;
    const [rx, ry, d] = dims === 3 ? rotate(x, y, z, view.yaw, view.pitch) : [x, y, 0];
    out[3 * i] = view.width / 2 + (view.panX || 0) + rx * scale;
    out[3 * i + 1] = view.height / 2 + (view.panY || 0) - ry * scale;
    out[3 * i + 2] = d;
  }
  return out;
}

// Labels (one per point) or values (counts, log colour scale) -> one CSS colour per point, and the legend entries.
export function colours(labels, values, n) {
  if (labels && labels.length === n) {
    const order = new Map();
    const cols = labels.map((l) => {
      if (!order.has(l)) order.set(l, PALETTE[order.size % PALETTE.length]);
      return order.get(l);
    });
    return { cols, legend: Array.from(order.entries()) };
  }
  if (values && values.length === n) {
    const logs = values.map((v) => Math.log10(1 + Math.max(0, v)));
    const top = Math.max(1e-9, ...logs);
    const cols = logs.map((v) => {
      const t = (v / top) * (VIRIDIS.length - 1), i = Math.min(VIRIDIS.length - 2, Math.floor(t)), f = t - i;
      const c = VIRIDIS[i].map((lo, j) => Math.round(lo + (VIRIDIS[i + 1][j] - lo) * f));
      return `rgb(${c[0]},${c[1]},${c[2]})`;
    });
    return { cols, legend: [] };
  }
  return { cols: new Array(n).fill(PALETTE[0]), legend: [] };
}

// Screen points [n * 3] and a mouse position -> index of the closest point within maxDist pixels, or -1.
export function nearestPoint(pts, x, y, maxDist) {
  let best = -1, bestD = maxDist * maxDist;
  for (let i = 0; i < pts.length / 3; i++) {
    const dx = pts[3 * i] - x, dy = pts[3 * i + 1] - y, d = dx * dx + dy * dy;
    if (d <= bestD) { best = i; bestD = d; }
  }
  return best;
}

function short(text, n) {
  return text.length > n ? text.slice(0, n - 1) + "\u2026" : text;
}

// ---------------------------------------------------------------- anywidget view

function make(tag, cls, parent, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  if (parent) parent.appendChild(e);
  return e;
}

export default {
  render({ model, el }) {
    el.classList.add("labkit-proj");
    el.textContent = "";
    const title = make("div", "lk-title", el);
    const bar = make("div", "lk-bar", el);
    const search = make("input", "lk-search", bar);
    search.type = "search";
    search.placeholder = "search a token\u2026";
    search.setAttribute("aria-label", "search a token");
    make("span", "lk-lbl", bar, "k");
    const kBox = make("input", "lk-k", bar);
    kBox.type = "number";
    kBox.min = "1";
    const frameBox = make("span", "lk-frames", bar);
    const play = make("button", "lk-btn", frameBox, "\u25b6");
    const slider = make("input", "lk-slider", frameBox);
    slider.type = "range";
    slider.min = "0";
    const frameName = make("span", "lk-frame-name", frameBox);
    const status = make("div", "lk-error", el);
    const body = make("div", "lk-body", el);
    const stage = make("div", "lk-stage", body);
    const canvas = make("canvas", "lk-canvas", stage);
    const tip = make("div", "lk-tip", stage);
    const side = make("div", "lk-side", body);
    make("div", "lk-side-title", side, "nearest by cosine");
    const list = make("ol", "lk-neighbours", side);
    const legend = make("div", "lk-legend", side);

    const view = { width: 640, height: 460, yaw: 0.6, pitch: 0.35, zoom: 1, panX: 0, panY: 0 };
    let all = new Float32Array(0), shape = [1, 0, 2], b = bounds(all, 2), cols = { cols: [], legend: [] }, pts = new Float32Array(0);
    let timer = null, drag = null;

    function load() {
      all = toFloat32(model.get("coords"));
      shape = model.get("shape") || [1, 0, 2];
      b = bounds(all, shape[2]);
      cols = colours(model.get("labels"), model.get("values"), shape[1]);
      legend.textContent = "";
      for (const [name, colour] of cols.legend.slice(0, 20)) {
        const row = make("div", "lk-legend-row", legend);
        make("span", "lk-swatch", row).style.background = colour;
        make("span", null, row, short(String(name), 30));
      }
      if (cols.legend.length > 20) {
        make("div", "lk-legend-row", legend,
          `+ ${cols.legend.length - 20} more labels not listed (the first 20 of ${cols.legend.length}; hover a point for its label)`);
      }
      const frames = shape[0];
      frameBox.style.display = frames > 1 ? "" : "none";
      slider.max = String(Math.max(0, frames - 1));
      const info = model.get("info") || {};
      title.textContent = info.title || "";
    }

    function frameCoords() {
      const [, n, d] = shape, f = Math.min(model.get("frame") || 0, shape[0] - 1);
      return all.subarray(f * n * d, (f + 1) * n * d);
    }

    function draw() {
      const ratio = window.devicePixelRatio || 1;
      view.width = Math.max(320, Math.min(900, (stage.clientWidth || 640)));
      canvas.width = Math.round(view.width * ratio);
      canvas.height = Math.round(view.height * ratio);
      canvas.style.width = view.width + "px";
      canvas.style.height = view.height + "px";
      const ctx = canvas.getContext("2d");
      ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
      ctx.clearRect(0, 0, view.width, view.height);
      const n = shape[1], dims = shape[2];
      pts = screenPoints(frameCoords(), dims, b, view);
      const order = Array.from({ length: n }, (_, i) => i);
      if (dims === 3) order.sort((i, j) => pts[3 * i + 2] - pts[3 * j + 2]); // far points first
      const r = n > 5000 ? 1.5 : n > 1000 ? 2.5 : 3.5;
      ctx.globalAlpha = 0.75;
      for (const i of order) {
        ctx.fillStyle = cols.cols[i];
        ctx.beginPath();
        ctx.arc(pts[3 * i], pts[3 * i + 1], r, 0, 2 * Math.PI);
        ctx.fill();
      }
      ctx.globalAlpha = 1;
      const tokens = model.get("tokens") || [];
      const ring = (i, radius, colour, width) => {
        ctx.strokeStyle = colour;
        ctx.lineWidth = width;
        ctx.beginPath();
        ctx.arc(pts[3 * i], pts[3 * i + 1], radius, 0, 2 * Math.PI);
        ctx.stroke();
        ctx.fillStyle = "#222";
        ctx.font = "11px system-ui, sans-serif";
        ctx.fillText(short(String(tokens[i] ?? i), 24), pts[3 * i] + radius + 2, pts[3 * i + 1] - radius);
      };
      for (const nb of model.get("neighbours") || []) if (nb.index < n) ring(nb.index, 6, "#ff7f0e", 2);
      const sel = model.get("selected");
      if (sel !== null && sel !== undefined && sel < n) ring(sel, 9, "#d62728", 2.5);
    }

    function showList() {
      list.textContent = "";
      for (const nb of model.get("neighbours") || []) {
        const li = make("li", "lk-nb", list);
        make("span", "lk-nb-tok", li, short(String(nb.token ?? nb.index), 40));
        make("span", "lk-nb-cos", li, Number(nb.cosine).toFixed(3));
        li.title = String(nb.token ?? nb.index);
        li.addEventListener("click", () => select(nb.index));
      }
      status.textContent = model.get("error") || "";
      if (document.activeElement !== search) search.value = model.get("query") || "";
      kBox.value = String(model.get("k"));
      kBox.max = String(Math.max(1, shape[1] - 1));
      slider.value = String(model.get("frame") || 0);
      frameName.textContent = (model.get("frame_names") || [])[model.get("frame") || 0] || "";
    }

    function select(i) {
      model.set("selected", i);
      model.save_changes();
    }

    search.addEventListener("keydown", (e) => {
      if (e.key === "Enter") { model.set("query", search.value); model.save_changes(); }
    });
    search.addEventListener("search", () => { model.set("query", search.value); model.save_changes(); });
    kBox.addEventListener("change", () => {
      const k = Math.max(1, Math.min(shape[1] - 1, parseInt(kBox.value, 10) || 1));
      model.set("k", k);
      model.save_changes();
    });
    slider.addEventListener("input", () => { model.set("frame", parseInt(slider.value, 10)); model.save_changes(); });
    play.addEventListener("click", () => {
      if (timer) { clearInterval(timer); timer = null; play.textContent = "\u25b6"; return; }
      play.textContent = "\u23f8";
      timer = setInterval(() => {
        const next = ((model.get("frame") || 0) + 1) % shape[0];
        model.set("frame", next);
        model.save_changes();
        if (next === shape[0] - 1) { clearInterval(timer); timer = null; play.textContent = "\u25b6"; }
      }, 700);
    });
    canvas.addEventListener("mousedown", (e) => { drag = { x: e.offsetX, y: e.offsetY, moved: false }; });
    canvas.addEventListener("mousemove", (e) => {
      if (drag) {
        const dx = e.offsetX - drag.x, dy = e.offsetY - drag.y;
        if (Math.abs(dx) + Math.abs(dy) > 2) drag.moved = true;
        if (shape[2] === 3) { view.yaw += dx * 0.01; view.pitch += dy * 0.01; } else { view.panX += dx; view.panY += dy; }
        drag.x = e.offsetX; drag.y = e.offsetY;
        draw();
        return;
      }
      const i = nearestPoint(pts, e.offsetX, e.offsetY, 8);
      if (i < 0) { tip.style.display = "none"; return; }
      const labels = model.get("labels") || [], values = model.get("values") || [];
      const parts = [String((model.get("tokens") || [])[i] ?? i), `row ${i}`];
      if (labels.length) parts.push(`label ${labels[i]}`);
      if (values.length) parts.push(`count ${values[i]}`);
      tip.textContent = parts.join("  \u00b7  ");
      tip.style.display = "block";
      tip.style.left = e.offsetX + 12 + "px";
      tip.style.top = e.offsetY + 8 + "px";
    });
    const up = (e) => {
      if (drag && !drag.moved && e.type === "mouseup") {
        const i = nearestPoint(pts, e.offsetX, e.offsetY, 8);
        if (i >= 0) select(i);
      }
      drag = null;
    };
    canvas.addEventListener("mouseup", up);
    canvas.addEventListener("mouseleave", (e) => { up(e); tip.style.display = "none"; });
    canvas.addEventListener("wheel", (e) => {
      e.preventDefault();
      view.zoom = Math.max(0.2, Math.min(50, view.zoom * Math.exp(-e.deltaY * 0.0015)));
      draw();
    }, { passive: false });
    canvas.addEventListener("dblclick", () => { Object.assign(view, { zoom: 1, panX: 0, panY: 0, yaw: 0.6, pitch: 0.35 }); draw(); });

    const reload = () => { load(); draw(); showList(); };
    const redraw = () => { draw(); showList(); };
    const data = ["change:coords", "change:shape", "change:labels", "change:values", "change:info"];
    const small = ["change:frame", "change:neighbours", "change:selected", "change:error", "change:query", "change:k"];
    data.forEach((ev) => model.on(ev, reload));
    small.forEach((ev) => model.on(ev, redraw));
    reload();
    requestAnimationFrame(() => draw()); // the element has its real width once attached
    return () => {
      if (timer) clearInterval(timer);
      data.forEach((ev) => model.off(ev, reload));
      small.forEach((ev) => model.off(ev, redraw));
    };
  },
};
