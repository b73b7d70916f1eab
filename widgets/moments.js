// labkit optimizer-state view: one parameter's weight, gradient, Adam moments and update as heatmaps, one frame per
// recorded step. Hovering (or clicking, to pin) a cell shows every number of that weight and the update rule's
// prediction next to the real change. Static pages (labkit.viz.optimizers) inline this file as a classic script
// and call mountStatic(). Plain DOM + canvas, no libraries, no network. Text only ever goes through textContent.
// Keep to `export function` (the Python inliner turns exactly those into locals).
import { el, base64ToBytes, halfToFloat, mountLiveView } from "./dom.js";

// ---------------------------------------------------------------- pure helpers (tested with node)

// Dense float16 arrays of a labkit-arrays/1 payload -> {name: Float32Array} (this view never prunes).
export function decodeDense(header, bytes) {
  if (!header || header.format !== "labkit-arrays/1") throw new Error("labkit: unknown payload format");
  const out = {};
  for (const [name, spec] of Object.entries(header.arrays)) {
    const n = spec.shape.reduce((a, b) => a * b, 1);
    const dv = new DataView(bytes.buffer, bytes.byteOffset + spec.offset, spec.nbytes);
    const data = new Float32Array(n);
    for (let i = 0; i < n; i++) data[i] = halfToFloat(dv.getUint16(2 * i, true));
    out[name] = data;
  }
  return out;
}

// A value in [-1, 1] (signed) or [0, 1] -> [r, g, b]; the square root keeps small values visible (as in Python).
export function cellColor(x, signed) {
  if (!Number.isFinite(x)) x = 0;
  if (signed) {
    const v = Math.max(-1, Math.min(1, x)), m = Math.sqrt(Math.abs(v));
    const to = v < 0 ? [33, 102, 172] : [178, 24, 43];
    return to.map((c) => Math.round(255 + (c - 255) * m));
  }
  const m = Math.sqrt(Math.max(0, Math.min(1, x)));
  return [84, 39, 143].map((c) => Math.round(255 + (c - 255) * m));
}

// The update rule's change for one weight: kind "adam" / "adamw" / "sgd", the frame's settings, the cell's values.
export function predictedUpdate(kind, frame, v) {
  if (kind === "sgd") return -frame.lr * v.m_hat;
  const decay = kind === "adamw" ? frame.weight_decay * v.weight : 0;
  return -frame.lr * (v.direction + decay);
}

export function fmt(x) {
  if (x === null || x === undefined || !Number.isFinite(x)) return "–";
  if (x === 0) return "0";
  const a = Math.abs(x);
  return a >= 1e-3 && a < 1e4 ? x.toPrecision(3) : x.toExponential(2);
}

// ---------------------------------------------------------------- drawing


function ruleText(kind) {
  if (kind === "sgd") return "rule: b \u2190 \u03bc\u00b7b + g;  \u0394w = \u2212\u03b7\u00b7b";
  const base = "rule: m \u2190 \u03b2\u2081m + (1\u2212\u03b2\u2081)g;  v \u2190 \u03b2\u2082v + (1\u2212\u03b2\u2082)g\u00b2;  " +
    "\u0394w = \u2212\u03b7\u00b7m\u0302/(\u221av\u0302+\u03b5)";
  return kind === "adamw" ? base + " \u2212 \u03b7\u00b7\u03bb\u00b7w" : base;
}

export function mount(host, spec) {
  const bytes = base64ToBytes(spec.b64 || "");
  const arrays = decodeDense(spec.header, bytes);
  const R = spec.rows, C = spec.cols, F = spec.frames.length;
  const cell = Math.max(2, Math.min(12, Math.floor(150 / Math.max(R, C))));
  let frame = F - 1, pinned = null;
  host.replaceChildren();
  host.appendChild(el("div", "lk-mom-title", spec.title));
  const shape = spec.full_shape.join("\u00d7");
  const crop = R * C < spec.full_shape.reduce((a, b) => a * b, 1) ? ` (showing the first ${R}\u00d7${C})` : "";
  host.appendChild(el("div", "lk-mom-sub", `${spec.name} [${shape}]${crop}, ${spec.kind}.  ${ruleText(spec.kind)}`));
  const controls = el("div", "lk-mom-controls");
  const slider = el("input");
  slider.type = "range"; slider.min = "0"; slider.max = String(F - 1); slider.step = "1"; slider.value = String(frame);
  const stepLabel = el("span", "lk-mom-step");
  if (F > 1) controls.append(el("span", null, "recorded step"), slider);
  controls.append(stepLabel);
  host.appendChild(controls);
  const row = el("div", "lk-mom-panels");
  host.appendChild(row);
  const views = spec.panels.map((p) => {
    const box = el("div", "lk-mom-panel");
    const head = el("div", "lk-mom-head", p.label);
    head.title = p.about;
    const wrap = el("div", "lk-mom-wrap");
    const canvas = el("canvas");
    canvas.width = C; canvas.height = R;
    canvas.style.width = C * cell + "px"; canvas.style.height = R * cell + "px";
    canvas.title = p.about;
    const mark = el("div", "lk-mom-mark");
    mark.style.width = cell + "px"; mark.style.height = cell + "px";
    wrap.append(canvas, mark);
    const scale = el("div", "lk-mom-scale");
    box.append(head, wrap, scale);
    row.appendChild(box);
    return { p, canvas, mark, scale };
  });
  const readout = el("div", "lk-mom-readout", "hover a cell to see its numbers; click to pin it");
  host.appendChild(readout);
  const legend = el("div", "lk-mom-legend");
  for (const p of spec.panels) legend.appendChild(el("div", null, `${p.label}: ${p.about}`));
  host.appendChild(legend);

  const value = (key, f, r, c) => arrays[key][(f * R + r) * C + c] * spec.scales[key][f];

  function draw() {
    const info = spec.frames[frame];
    stepLabel.textContent = ` t = ${info.step}  (lr ${fmt(info.lr)}${spec.kind === "sgd" ? ", momentum " + info.momentum :
      ", \u03b2 " + info.betas.join("/") + ", \u03b5 " + info.eps}${info.weight_decay ? ", \u03bb " + info.weight_decay : ""})`;
    for (const v of views) {
      const ctx = v.canvas.getContext("2d");
      if (!ctx) continue;
      const img = ctx.createImageData(C, R), data = arrays[v.p.key], off = frame * R * C;
      for (let i = 0; i < R * C; i++) {
        const [r, g, b] = cellColor(data[off + i], v.p.signed);
        img.data[4 * i] = r; img.data[4 * i + 1] = g; img.data[4 * i + 2] = b; img.data[4 * i + 3] = 255;
      }
      ctx.putImageData(img, 0, 0);
      v.scale.textContent = (v.p.signed ? "\u00b1" : "max ") + fmt(spec.scales[v.p.key][frame]);
    }
    if (pinned) show(pinned[0], pinned[1]);
  }

  function show(r, c) {
    for (const v of views) {
      v.mark.style.display = "block";
      v.mark.style.left = c * cell + "px"; v.mark.style.top = r * cell + "px";
    }
    const vals = {};
    for (const p of spec.panels) vals[p.key] = value(p.key, frame, r, c);
    const parts = [`row ${r}, column ${c}:`];
    for (const p of spec.panels) if (p.key !== "update") parts.push(`${p.label} = ${fmt(vals[p.key])}`);
    const rule = predictedUpdate(spec.kind, spec.frames[frame], vals);
    parts.push(`rule \u0394w = ${fmt(rule)}`, `real \u0394w = ${fmt(vals.update)}`);
    readout.textContent = parts.join("   ");
  }

  function hide() {
    if (pinned) { show(pinned[0], pinned[1]); return; }
    for (const v of views) v.mark.style.display = "none";
  }

  function locate(v, event) {
    const rect = v.canvas.getBoundingClientRect();
    const c = Math.floor((event.clientX - rect.left) / cell), r = Math.floor((event.clientY - rect.top) / cell);
    return r >= 0 && r < R && c >= 0 && c < C ? [r, c] : null;
  }

  for (const v of views) {
    v.canvas.addEventListener("mousemove", (e) => { const at = locate(v, e); if (at) show(at[0], at[1]); });
    v.canvas.addEventListener("mouseleave", hide);
    v.canvas.addEventListener("click", (e) => {
      const at = locate(v, e);
      pinned = at && !(pinned && pinned[0] === at[0] && pinned[1] === at[1]) ? at : null;
      if (pinned) show(pinned[0], pinned[1]); else hide();
    });
  }
  slider.addEventListener("input", () => { frame = Number(slider.value); draw(); });
  draw();
  return { setFrame(f) { frame = Math.max(0, Math.min(F - 1, f)); slider.value = String(frame); draw(); }, show };
}

// Static pages: mounts the spec beside the inlined script (see mountLiveView in dom.js).
export function mountStatic(script, id) {
  mountLiveView(script, id, "labkit-mom", mount);
}
