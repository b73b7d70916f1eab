// labkit attention views: head view, model view, query-key view, cross-attention, heatmap.
// One ES module serves both hosts: anywidget calls `default.render({model, el})`; static HTML pages
// (written by labkit.viz.attention) inline this file as a classic script and call `mount(el, spec)`.
// Plain DOM + canvas, no libraries, no network. Token text only ever goes through textContent.
// Keep to `export function` / `export default` and named imports from "./dom.js" (what the Python inliner handles).

import { el, base64ToBytes, halfToFloat, mountLiveView, numberSelect } from "./dom.js";

// ---------------------------------------------------------------- pure decoding (tested with node)

let HALF = null; // 65536-entry lookup table, built on first use (256 KB)
function halfTable() {
  if (!HALF) {
    HALF = new Float32Array(65536);
    for (let i = 0; i < 65536; i++) HALF[i] = halfToFloat(i);
  }
  return HALF;
}

// Bytes of one array (spec from the header: shape, top_k, offset, nbytes) -> {shape, data: Float32Array}.
// Pruned rows come back dense with zeros where weights were dropped.
export function decodeArray(bytes, spec) {
  const T = halfTable();
  const shape = spec.shape;
  const n = shape.reduce((a, b) => a * b, 1);
  const dv = new DataView(bytes.buffer, bytes.byteOffset + spec.offset, spec.nbytes);
  const data = new Float32Array(n);
  if (spec.top_k === null || spec.top_k === undefined) {
    for (let i = 0; i < n; i++) data[i] = T[dv.getUint16(2 * i, true)];
    return { shape, data };
  }
  const k = spec.top_k, K = shape[shape.length - 1], rows = n / K, vals = 2 * rows * k;
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < k; j++) {
      const e = r * k + j;
      data[r * K + dv.getUint16(2 * e, true)] = T[dv.getUint16(vals + 2 * e, true)];
    }
  }
  return { shape, data };
}

export function decodePayload(header, bytes) {
  if (!header || header.format !== "labkit-arrays/1") throw new Error("labkit: unknown payload format");
  const out = {};
  for (const [name, spec] of Object.entries(header.arrays)) out[name] = decodeArray(bytes, spec);
  return out;
}

// [L, H, Q, K] array -> the Q*K matrix of one layer and head (a view, no copy).
export function headMatrix(arr, layer, head) {
  const [, H, Q, K] = arr.shape;
  const start = (layer * H + head) * Q * K;
  return arr.data.subarray(start, start + Q * K);
}

// ---------------------------------------------------------------- small DOM helpers

const COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b",
  "#e377c2", "#17becf", "#bcbd22", "#7f7f7f", "#393b79", "#ad494a", "#637939", "#843c39", "#5254a3", "#6b6ecf"];
const ROW = 20; // px per token row
const VIEW_H = 720; // px: height of the scrolling view window (matches the CSS max-height)
const LEVELS = 20; // opacity steps of the head view's lines

function canvas(w, h) {
  const c = el("canvas");
  const r = (typeof window !== "undefined" && window.devicePixelRatio) || 1;
  c.width = Math.max(1, Math.round(w * r));
  c.height = Math.max(1, Math.round(h * r));
  c.style.width = w + "px";
  c.style.height = h + "px";
  const ctx = c.getContext("2d");
  ctx.scale(r, r);
  return [c, ctx];
}

function select(label, options, value, onChange) {
  return numberSelect("lk-ctl", label, options, value, onChange);
}

// Weight in [0,1] -> blue with that strength; diverging value in [-1,1] -> blue (neg) / red (pos).
function blue(w) { return `rgba(8,48,107,${Math.sqrt(Math.max(0, Math.min(1, w)))})`; }
function diverging(v) {
  const a = Math.min(1, Math.abs(v));
  return v >= 0 ? `rgba(178,24,43,${a})` : `rgba(33,102,172,${a})`;
}

function rgb(hex) { return [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16)); }

// Paint a Q*K matrix into an ImageData-backed canvas (one pixel per cell; CSS scales it up).
function matrixCanvas(m, Q, K, color, size) {
  const c = el("canvas", "lk-matrix");
  c.width = K; c.height = Q;
  c.style.width = (size ? size[0] : K) + "px";
  c.style.height = (size ? size[1] : Q) + "px";
  const ctx = c.getContext("2d"), img = ctx.createImageData(K, Q), [r, g, b] = rgb(color);
  for (let i = 0; i < Q * K; i++) {
    const a = Math.sqrt(Math.max(0, Math.min(1, m[i])));
    img.data[4 * i] = 255 + (r - 255) * a; img.data[4 * i + 1] = 255 + (g - 255) * a;
    img.data[4 * i + 2] = 255 + (b - 255) * a; img.data[4 * i + 3] = 255;
  }
  ctx.putImageData(img, 0, 0);
  return c;
}

function layerName(st, l) { return st.layer_ids ? st.layer_ids[l] : l; }
function headName(st, h) { return st.head_ids ? st.head_ids[h] : h; }

// ---------------------------------------------------------------- views

// Head view (and cross view): queries on the left, keys on the right, one line per weight.
function headView(root, st, set) {
  const A = st.arrays.attn, [L, H, Q, K] = A.shape;
  const heads = st.head === null || st.head === undefined ? [...Array(H).keys()] : [st.head];
  const bar = el("div", "lk-bar");
  bar.appendChild(select("Layer", [...Array(L).keys()].map((l) => [l, String(layerName(st, l))]), st.layer, (l) => set({ layer: l })));
  const chips = el("span", "lk-heads");
  for (let h = 0; h < H; h++) {
    const chip = el("button", "lk-chip" + (heads.includes(h) ? " on" : ""), headName(st, h));
    chip.style.setProperty("--c", COLORS[h % COLORS.length]);
    chip.title = "head " + headName(st, h) + " (click: only this head; click again: all heads)";
    chip.addEventListener("click", () => set({ head: st.head === h ? null : h }));
    chips.appendChild(chip);
  }
  bar.appendChild(el("span", "lk-lbl", "Heads"));
  bar.appendChild(chips);
  if (st.back) {
    const back = el("button", "lk-btn", "\u2190 all layers and heads");
    back.addEventListener("click", () => set({ view: st.back, back: null, head: null }));
    bar.appendChild(back);
  }
  root.appendChild(bar);
  const body = el("div", "lk-body");
  const cols = [el("div", "lk-col lk-left"), null, el("div", "lk-col lk-right")];
  // The canvas covers only the visible window (at most VIEW_H px) and follows the scroll: drawing
  // thousands of long lines into a canvas as tall as 256 tokens takes seconds without a GPU.
  const W = 180, height = Math.max(Q, K) * ROW, winH = Math.min(height, VIEW_H);
  const [cv, ctx] = canvas(W, winH);
  const lane = el("div", "lk-lane");
  lane.style.width = W + "px";
  lane.style.height = height + "px";
  lane.appendChild(cv);
  cols[1] = lane;
  let offset = 0, last = null;
  const qTok = [], kTok = [];
  st.q_tokens.forEach((t, i) => { const d = el("div", "lk-tok", t); d.dataset.i = i; qTok.push(d); cols[0].appendChild(d); });
  st.k_tokens.forEach((t, j) => { const d = el("div", "lk-tok", t); d.dataset.j = j; kTok.push(d); cols[2].appendChild(d); });
  const titles = el("div", "lk-coltitles");
  titles.appendChild(el("span", null, st.q_label || "query (attends from)"));
  titles.appendChild(el("span", null, st.k_label || "key (attends to)"));
  root.appendChild(titles);
  cols.forEach((c) => body.appendChild(c));
  root.appendChild(body);
  const mats = heads.map((h) => headMatrix(A, st.layer, h));

  // focus: {side: "q"|"k", i} or null; only the focused token's lines are drawn
  function draw(focus) {
    last = focus;
    offset = Math.max(0, Math.min(height - winH, root.getBoundingClientRect().top - lane.getBoundingClientRect().top));
    cv.style.top = offset + "px";
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.clearRect(0, 0, cv.width, cv.height);
    const r = cv.width / W;
    ctx.setTransform(r, 0, 0, r, 0, -offset * r);
    ctx.lineWidth = 2;
    heads.forEach((h, n) => {
      ctx.strokeStyle = COLORS[h % COLORS.length];
      const m = mats[n];
      // one path per opacity level: a few stroke() calls instead of one per line (256 tokens x 12 heads)
      const levels = Array.from({ length: LEVELS }, () => new Path2D());
      for (let i = 0; i < Q; i++) {
        if (focus && focus.side === "q" && focus.i !== i) continue;
        for (let j = 0; j < K; j++) {
          if (focus && focus.side === "k" && focus.i !== j) continue;
          const w = m[i * K + j];
          if (w < 0.01) continue; // invisible anyway
          const path = levels[Math.min(LEVELS - 1, Math.floor(w * LEVELS))];
          path.moveTo(0, i * ROW + ROW / 2);
          path.lineTo(W, j * ROW + ROW / 2);
        }
      }
      levels.forEach((path, b) => { ctx.globalAlpha = (b + 1) / LEVELS; ctx.stroke(path); });
    });
    ctx.globalAlpha = 1;
    // shade the other column by the mean weight over the shown heads
    qTok.forEach((d) => (d.style.background = ""));
    kTok.forEach((d) => (d.style.background = ""));
    if (!focus) return;
    const other = focus.side === "q" ? kTok : qTok;
    other.forEach((d, x) => {
      let s = 0;
      mats.forEach((m) => (s += focus.side === "q" ? m[focus.i * K + x] : m[x * K + focus.i]));
      d.style.background = blue(s / mats.length);
    });
    (focus.side === "q" ? qTok : kTok)[focus.i].style.background = "rgba(255,200,0,0.5)";
  }
  const fixed = st.focus === null || st.focus === undefined ? null : { side: "q", i: st.focus };
  qTok.forEach((d, i) => {
    d.addEventListener("mouseenter", () => draw({ side: "q", i }));
    d.addEventListener("click", () => set({ focus: st.focus === i ? null : i }));
  });
  kTok.forEach((d, j) => d.addEventListener("mouseenter", () => draw({ side: "k", i: j })));
  body.addEventListener("mouseleave", () => draw(fixed));
  let queued = false;
  root.onscroll = () => { // one redraw per frame while scrolling
    if (queued) return;
    queued = true;
    requestAnimationFrame(() => { queued = false; draw(last); });
  };
  draw(fixed);
  if (!lane.isConnected) requestAnimationFrame(() => draw(last)); // offsets are known once attached
}

// Model view: one thumbnail per layer x head; click one to open its head view.
function modelView(root, st, set) {
  const A = st.arrays.attn, [L, H, Q, K] = A.shape;
  const px = Math.max(40, Math.min(96, Math.floor(720 / H) - 8));
  const grid = el("div", "lk-grid");
  grid.style.gridTemplateColumns = `auto repeat(${H}, ${px}px)`;
  grid.appendChild(el("div"));
  for (let h = 0; h < H; h++) grid.appendChild(el("div", "lk-axis", "H" + headName(st, h)));
  for (let l = 0; l < L; l++) {
    grid.appendChild(el("div", "lk-axis", "L" + layerName(st, l)));
    for (let h = 0; h < H; h++) {
      const c = matrixCanvas(headMatrix(A, l, h), Q, K, COLORS[h % COLORS.length], [px, px]);
      c.title = `layer ${layerName(st, l)}, head ${headName(st, h)}: click to enlarge`;
      c.addEventListener("click", () => set({ view: st.cross ? "cross" : "head", back: "model", layer: l, head: h }));
      grid.appendChild(c);
    }
  }
  root.appendChild(el("div", "lk-hint", "Rows: layers, columns: heads. Each cell is that head's query x key pattern; click to enlarge."));
  root.appendChild(grid);
}

// Heatmap: one head as a query x key grid, hover for the exact weight.
function heatmapView(root, st, set) {
  const A = st.arrays.attn, [L, H, Q, K] = A.shape, head = st.head ?? 0;
  const bar = el("div", "lk-bar");
  bar.appendChild(select("Layer", [...Array(L).keys()].map((l) => [l, String(layerName(st, l))]), st.layer, (l) => set({ layer: l })));
  bar.appendChild(select("Head", [...Array(H).keys()].map((h) => [h, String(headName(st, h))]), head, (h) => set({ head: h })));
  root.appendChild(bar);
  const cell = Math.max(2, Math.min(24, Math.floor(560 / Math.max(Q, K))));
  const c = matrixCanvas(headMatrix(A, st.layer, head), Q, K, "#08306b", [K * cell, Q * cell]);
  const status = el("div", "lk-status", "hover a cell");
  c.addEventListener("mousemove", (e) => {
    const r = c.getBoundingClientRect();
    const i = Math.min(Q - 1, Math.floor((e.clientY - r.top) / cell)), j = Math.min(K - 1, Math.floor((e.clientX - r.left) / cell));
    const w = headMatrix(A, st.layer, head)[i * K + j];
    status.textContent = `${st.q_tokens[i]} \u2192 ${st.k_tokens[j]}: ${w.toFixed(4)}`;
  });
  const wrap = el("div", "lk-heat");
  if (cell >= 10) {
    const left = el("div", "lk-ylab");
    st.q_tokens.forEach((t) => { const d = el("div", null, t); d.style.height = d.style.lineHeight = cell + "px"; left.appendChild(d); });
    wrap.appendChild(left);
  }
  const right = el("div");
  right.appendChild(c);
  if (cell >= 10) {
    const bottom = el("div", "lk-xlab");
    st.k_tokens.forEach((t) => { const d = el("div", null, t); d.style.width = cell + "px"; bottom.appendChild(d); });
    right.appendChild(bottom);
  }
  wrap.appendChild(right);
  root.appendChild(wrap);
  root.appendChild(status);
}

// Query-key view for one head: q of the chosen query token, each key's k, their elementwise product,
// the score q.k/sqrt(d) and the attention weight the model actually used.
function qkView(root, st, set) {
  const q = st.arrays.q, k = st.arrays.k, A = st.arrays.attn;
  const Q = q.shape[2], K = k.shape[2], d = q.shape[3];
  const i = st.focus ?? Q - 1;
  const qi = q.data.subarray(i * d, (i + 1) * d);
  const W = headMatrix(A, 0, 0);
  root.appendChild(el("div", "lk-hint", `Layer ${layerName(st, 0)}, head ${headName(st, 0)}. Pick a query token; rows are keys.`));
  const picker = el("div", "lk-picker");
  st.q_tokens.forEach((t, x) => {
    const b = el("button", "lk-tok" + (x === i ? " on" : ""), t);
    b.addEventListener("click", () => set({ focus: x }));
    picker.appendChild(b);
  });
  root.appendChild(picker);
  let vmax = 1e-6, pmax = 1e-6;
  const scores = new Float32Array(K);
  for (let j = 0; j < K; j++) {
    let s = 0;
    for (let x = 0; x < d; x++) {
      const p = qi[x] * k.data[j * d + x];
      s += p; pmax = Math.max(pmax, Math.abs(p)); vmax = Math.max(vmax, Math.abs(k.data[j * d + x]));
    }
    scores[j] = s / Math.sqrt(d);
  }
  qi.forEach((v) => (vmax = Math.max(vmax, Math.abs(v))));
  const smax = Math.max(1e-6, ...scores.map(Math.abs));
  const cw = Math.max(2, Math.min(8, Math.floor(256 / d)));
  function strip(vals, scale) {
    const [c, ctx] = canvas(d * cw, ROW - 4);
    vals.forEach((v, x) => { ctx.fillStyle = diverging(v / scale); ctx.fillRect(x * cw, 0, cw, ROW - 4); });
    return c;
  }
  const qline = el("div", "lk-qline");
  qline.appendChild(el("span", null, "q of "));
  qline.appendChild(el("span", "lk-tok on", st.q_tokens[i]));
  qline.appendChild(strip(qi, vmax));
  root.appendChild(qline);
  const table = el("table", "lk-qk");
  const head = el("tr");
  ["key", "k", "q \u00d7 k", "q\u00b7k/\u221ad", "weight"].forEach((t) => head.appendChild(el("th", null, t)));
  table.appendChild(head);
  for (let j = 0; j < K; j++) {
    const tr = el("tr");
    tr.appendChild(el("td", "lk-tok", st.k_tokens[j]));
    const kj = k.data.subarray(j * d, (j + 1) * d);
    const c1 = el("td"); c1.appendChild(strip(kj, vmax)); tr.appendChild(c1);
    const c2 = el("td"); c2.appendChild(strip(kj.map((v, x) => v * qi[x]), pmax)); tr.appendChild(c2);
    const sc = el("td", "lk-num"), sb = el("span", "lk-sbar");
    sb.style.width = (40 * Math.abs(scores[j]) / smax) + "px";
    sb.style.background = scores[j] >= 0 ? "#b2182b" : "#2166ac";
    sc.appendChild(sb); sc.appendChild(el("span", null, scores[j].toFixed(3))); tr.appendChild(sc);
    const wc = el("td", "lk-num"), wb = el("span", "lk-sbar");
    wb.style.width = (60 * W[i * K + j]) + "px"; wb.style.background = "#08306b";
    wc.appendChild(wb); wc.appendChild(el("span", null, W[i * K + j].toFixed(3))); tr.appendChild(wc);
    table.appendChild(tr);
  }
  root.appendChild(table);
}

const VIEWS = { head: headView, cross: headView, model: modelView, heatmap: heatmapView, qk: qkView };

// The payload header -> the sentence that tells the reader the weights were pruned ("" when every weight is there).
export function pruningNotice(header) {
  const a = header && header.arrays && header.arrays.attn;
  if (!a || a.top_k === null || a.top_k === undefined) return "";
  const keys = a.shape[a.shape.length - 1];
  return `Pruned: each query shows only its ${a.top_k} strongest of ${keys} keys; the smaller weights are left out ` +
    "to keep the page small. To show every weight, build the view with top_k=None (and a larger max_bytes).";
}

// ---------------------------------------------------------------- entry points

// el: a container element. spec: {view, header, bytes | b64, q_tokens, k_tokens, layer, head, focus,
// layer_ids, head_ids, title, note, q_label, k_label}. onState(changes) hears selector changes.
// Returns {update(changes), destroy()}.
export function mount(host, spec, onState) {
  let arrays = null, problem = null;
  try {
    arrays = decodePayload(spec.header, spec.bytes || base64ToBytes(spec.b64 || ""));
  } catch (err) {
    problem = "labkit: no attention to show (" + err.message + ")";
  }
  const st = Object.assign({ layer: 0, head: null, focus: null, back: null }, spec, { arrays, b64: null, bytes: null });
  if (!st.k_tokens) st.k_tokens = st.q_tokens;
  st.cross = spec.view === "cross";
  const root = el("div", "labkit-attn-view");
  host.appendChild(root);
  function render() {
    root.replaceChildren();
    root.onscroll = null;
    if (st.title) root.appendChild(el("div", "lk-title", st.title));
    const notice = pruningNotice(st.header);
    if (notice) root.appendChild(el("div", "lk-notice", notice));
    const view = VIEWS[st.view];
    if (problem) { root.appendChild(el("div", "lk-error", problem)); return; }
    if (!view) { root.appendChild(el("div", "lk-error", "labkit: unknown view " + st.view)); return; }
    try { view(root, st, set); } catch (err) { root.appendChild(el("div", "lk-error", "labkit: " + err.message)); }
    if (st.note) root.appendChild(el("div", "lk-hint", st.note));
  }
  function set(changes) {
    Object.assign(st, changes);
    render();
    if (onState) onState(changes);
  }
  render();
  return {
    update(changes) { Object.assign(st, changes); render(); },
    destroy() { root.remove(); },
  };
}

// Static pages: mounts the spec beside the inlined script (see mountLiveView in dom.js).
export function mountStatic(script, id) {
  mountLiveView(script, id, "labkit-attn", mount);
}

// anywidget: traits carry the same spec; the payload trait is raw bytes (a DataView in the browser).
function specFromModel(model) {
  const dv = model.get("payload");
  const bytes = dv ? new Uint8Array(dv.buffer, dv.byteOffset, dv.byteLength) : new Uint8Array(0);
  const tokens = model.get("tokens") || [], target = model.get("target_tokens") || [];
  const info = model.get("info") || {};
  return Object.assign({}, info, {
    view: model.get("view"), header: model.get("header"), bytes: bytes.slice(),
    q_tokens: target.length ? target : tokens, k_tokens: tokens,
    layer: model.get("layer"), head: model.get("head"), focus: model.get("focus_token"),
  });
}

export default {
  render({ model, el: host }) {
    host.classList.add("labkit-attn");
    const push = (changes) => {
      const names = { layer: "layer", head: "head", focus: "focus_token", view: "view" };
      let dirty = false;
      for (const [key, trait] of Object.entries(names)) {
        if (key in changes) { model.set(trait, changes[key]); dirty = true; }
      }
      if (dirty) model.save_changes();
    };
    let view = mount(host, specFromModel(model), push);
    const remount = () => { view.destroy(); view = mount(host, specFromModel(model), push); };
    const small = () => view.update({ layer: model.get("layer"), head: model.get("head"), focus: model.get("focus_token"), view: model.get("view") });
    model.on("change:payload", remount);
    model.on("change:header", remount);
    model.on("change:tokens", remount);
    model.on("change:layer", small);
    model.on("change:head", small);
    model.on("change:focus_token", small);
    model.on("change:view", small);
    return () => {
      model.off("change:payload", remount); model.off("change:header", remount); model.off("change:tokens", remount);
      model.off("change:layer", small); model.off("change:head", small);
      model.off("change:focus_token", small); model.off("change:view", small);
      view.destroy();
    };
  },
};
