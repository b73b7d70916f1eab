// labkit training dashboard: loss / val loss, learning rate, gradient norm and tokens-per-second curves drawn as SVG,
// a progress bar, the current sample, and Stop / Save buttons that message the kernel.
// Plain DOM, no libraries, no network. Text from Python only ever goes through textContent.
// Keep to `export function` / `export default` and named imports from "./dom.js" (what the Python inliner handles).

import { el } from "./dom.js";

const SVGNS = "http://www.w3.org/2000/svg";

// ---------------------------------------------------------------- pure helpers (tested with node)

// Values (null = gap) and a weight of the past in [0, 1) -> bias-corrected exponential moving average.
export function ema(values, smoothing) {
  const out = [];
  let avg = 0, weight = 0;
  for (const v of values) {
    if (v === null || v === undefined || !Number.isFinite(v)) { out.push(null); continue; }
    avg = smoothing * avg + (1 - smoothing) * v;
    weight = smoothing * weight + (1 - smoothing);
    out.push(avg / weight);
  }
  return out;
}

// [min, max] of the finite values, widened when flat; null when there is none.
export function extent(values) {
  let lo = Infinity, hi = -Infinity;
  for (const v of values) if (v !== null && v !== undefined && Number.isFinite(v)) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
  if (lo > hi) return null;
  if (hi - lo < 1e-12) { const pad = Math.abs(lo) * 0.05 || 0.5; return [lo - pad, hi + pad]; }
  return [lo, hi];
}

// xs, ys (null = gap) and scale functions -> an SVG path "M x,y L x,y ...".
export function linePath(xs, ys, sx, sy) {
  let d = "", pen = "M";
  for (let i = 0; i < xs.length; i++) {
    const y = ys[i];
    if (y === null || y === undefined || !Number.isFinite(y)) { pen = "M"; continue; }
    d += pen + sx(xs[i]).toFixed(1) + "," + sy(y).toFixed(1);
    pen = "L";
  }
  return d;
}

export function formatSeconds(s) {
  if (s === null || s === undefined || !Number.isFinite(s)) return "";
  s = Math.round(s);
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
  return (h ? h + "h " : "") + (h || m ? m + "m " : "") + sec + "s";
}

// ---------------------------------------------------------------- drawing

function svgEl(tag, attrs) {
  const e = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  return e;
}

// One chart: series = [{xs, ys, cls, dots}], label = axis caption; returns an <svg>.
function chart(series, label, width, height, logY) {
  const left = 52, right = 10, top = 16, bottom = 20;
  const svg = svgEl("svg", { width, height, viewBox: `0 0 ${width} ${height}`, class: "lk-chart" });
  const tf = (v) => (logY ? (v > 0 ? Math.log10(v) : null) : v);
  const allX = [], allY = [];
  for (const s of series) { allX.push(...s.xs); for (const y of s.ys) allY.push(y === null ? null : tf(y)); }
  const title = svgEl("text", { x: left, y: 11, class: "lk-chart-title" });
  title.textContent = label;
  svg.appendChild(title);
  const ex = extent(allX), ey = extent(allY);
  svg.appendChild(svgEl("rect", { x: left, y: top, width: width - left - right, height: height - top - bottom, class: "lk-frame" }));
  if (!ex || !ey) return svg;
  if (ex[1] === ex[0]) ex[1] = ex[0] + 1;
  const sx = (x) => left + (x - ex[0]) / (ex[1] - ex[0]) * (width - left - right);
  const sy = (y) => top + (ey[1] - y) / (ey[1] - ey[0]) * (height - top - bottom);
  for (const f of [0, 0.5, 1]) {
    const y = ey[0] + f * (ey[1] - ey[0]);
    const t = svgEl("text", { x: left - 4, y: (sy(y) + 4).toFixed(1), "text-anchor": "end", class: "lk-tick" });
    t.textContent = logY ? Number(10 ** y).toExponential(1) : Number(y).toPrecision(3);
    svg.appendChild(t);
  }
  const xt = svgEl("text", { x: width - right, y: height - 5, "text-anchor": "end", class: "lk-tick" });
  xt.textContent = "step " + ex[1];
  svg.appendChild(xt);
  for (const s of series) {
    const ys = s.ys.map((y) => (y === null ? null : tf(y)));
    svg.appendChild(svgEl("path", { d: linePath(s.xs, ys, sx, sy), class: s.cls }));
    if (s.dots) {
      for (let i = 0; i < s.xs.length; i++) {
        if (ys[i] === null || !Number.isFinite(ys[i])) continue;
        svg.appendChild(svgEl("circle", { cx: sx(s.xs[i]).toFixed(1), cy: sy(ys[i]).toFixed(1), r: 2.5, class: s.cls + "-dot" }));
      }
    }
  }
  return svg;
}

function render(model, root, buttons) {
  const pts = model.get("points") || [], val = model.get("val_points") || [];
  const steps = pts.map((p) => p[0]), loss = pts.map((p) => p[1]);
  const smoothing = model.get("smoothing") || 0;
  const status = model.get("status");
  root.title.textContent = model.get("title") || "training";
  root.status.textContent = status;
  root.status.className = "lk-status lk-" + status;
  const total = model.get("total_steps"), step = model.get("step");
  root.fill.style.width = (100 * (model.get("progress") || 0)).toFixed(1) + "%";
  const eta = formatSeconds(model.get("eta_s"));
  root.count.textContent = `step ${step} / ${total}` + "  \u00b7  " + formatSeconds(model.get("elapsed_s")) +
    (eta ? "  \u00b7  ETA " + eta : "");
  const last = pts.length ? pts[pts.length - 1] : null;
  const facts = [];
  if (last && last[1] !== null) facts.push("loss " + last[1].toFixed(4));
  if (val.length && val[val.length - 1][1] !== null) facts.push("val " + val[val.length - 1][1].toFixed(4));
  if (last && last[2] !== null) facts.push("lr " + Number(last[2]).toExponential(2));
  const norm = (p) => (p.length > 4 ? p[4] : null); // points saved before the gradient norm have 4 entries
  if (last && norm(last) !== null) facts.push("grad norm " + Number(norm(last)).toPrecision(3));
  if (last && last[3] !== null) facts.push(Math.round(last[3]).toLocaleString() + " tok/s");
  root.facts.textContent = facts.join("  \u00b7  ");
  const width = Math.max(320, Math.min(720, root.box.clientWidth || 640));
  const lossSeries = [{ xs: steps, ys: loss, cls: smoothing ? "lk-raw" : "lk-train" }];
  if (smoothing) lossSeries.push({ xs: steps, ys: ema(loss, smoothing), cls: "lk-train" });
  if (val.length) lossSeries.push({ xs: val.map((p) => p[0]), ys: val.map((p) => p[1]), cls: "lk-val", dots: true });
  root.charts.replaceChildren(
    chart(lossSeries, "loss (blue: train" + (val.length ? ", red: val)" : ")"), width, 190, false),
    chart([{ xs: steps, ys: pts.map((p) => p[2]), cls: "lk-lr" }], "learning rate", width, 90, false),
    chart([{ xs: steps, ys: pts.map(norm), cls: "lk-gn" }], "gradient norm (before clipping)", width, 90, false),
    chart([{ xs: steps, ys: pts.map((p) => p[3]), cls: "lk-tps" }], "tokens / s", width, 90, false),
  );
  const sample = model.get("sample");
  root.sampleHead.textContent = sample ? `sample at step ${model.get("sample_step")}` : "sample: (none yet)";
  root.sample.textContent = sample || "";
  root.message.textContent = model.get("message") || "";
  const running = status === "running";
  buttons.stop.disabled = !running;
  buttons.save.disabled = !running || !model.get("can_save");
}

export default {
  render({ model, el: host }) {
    host.classList.add("labkit-dash");
    const box = el("div", "lk-dash");
    const head = el("div", "lk-head");
    const title = el("span", "lk-title"), status = el("span", "lk-status");
    const stop = el("button", "lk-btn lk-stop", "Stop"), save = el("button", "lk-btn lk-save", "Save");
    stop.title = "stop after the current step";
    save.title = "write a checkpoint after the current step";
    let clicks = 0;
    const send = (type) => model.send({ type, id: Date.now() + "-" + (++clicks) });
    stop.addEventListener("click", () => { send("stop"); stop.disabled = true; });
    save.addEventListener("click", () => send("save"));
    head.append(title, status, el("span", "lk-spacer"), save, stop);
    const bar = el("div", "lk-progress"), fill = el("div", "lk-fill");
    bar.appendChild(fill);
    const count = el("div", "lk-count"), facts = el("div", "lk-facts");
    const charts = el("div", "lk-charts");
    const sampleHead = el("div", "lk-sample-head"), sample = el("pre", "lk-sample");
    const message = el("div", "lk-message");
    box.append(head, bar, count, facts, charts, sampleHead, sample, message);
    host.appendChild(box);
    const root = { box, title, status, fill, count, facts, charts, sampleHead, sample, message };
    const buttons = { stop, save };
    let pending = false;
    // several traits change in one update: draw once per animation frame
    const redraw = () => {
      if (pending) return;
      pending = true;
      const go = () => { pending = false; render(model, root, buttons); };
      if (typeof requestAnimationFrame === "function") requestAnimationFrame(go); else setTimeout(go, 0);
    };
    const names = ["points", "val_points", "step", "total_steps", "progress", "status", "message", "sample",
      "sample_step", "elapsed_s", "eta_s", "can_save", "title", "smoothing"];
    for (const n of names) model.on("change:" + n, redraw);
    render(model, root, buttons);
    return () => { for (const n of names) model.off("change:" + n, redraw); box.remove(); };
  },
};
