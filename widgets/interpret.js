// labkit "looking inside" views: logit-lens grid, attribution token rows, neuron view, patching heatmap.
// One ES module for both hosts: anywidget calls `default.render({model, el})` (controls that Python answers);
// static pages (labkit.viz.lens/attribution/neurons/patching) inline it as a classic script and call `mountStatic`.
// Plain DOM, no libraries, no network. Token text only ever goes through textContent.
// Keep to `export function` / `export default` (the Python inliner turns exactly those into locals).
import { el, mountLiveView } from "./dom.js";

const WS = { " ": "\u00b7", "\n": "\u21b5", "\t": "\u2192", "\r": "\u240d" };

// Newlines, tabs and a token's leading/trailing spaces made visible (" Paris" -> "·Paris"); inner spaces stay.
export function visible(s) {
  const chars = [...String(s)]; // code points, so astral characters count once
  const blank = (ch) => /\s/.test(ch);
  let lead = 0, trail = chars.length;
  while (lead < chars.length && blank(chars[lead])) lead++;
  while (trail > lead && blank(chars[trail - 1])) trail--;
  let out = "";
  chars.forEach((ch, i) => {
    const edge = i < lead || i >= trail;
    out += ch === " " ? (edge ? WS[" "] : " ") : WS[ch] || ch;
  });
  return out;
}

// t in [-1, 1] -> CSS colour: red for positive, blue for negative, white at 0 (as labkit.viz.interpret_base).
export function diverging(t) {
  const x = Math.max(-1, Math.min(1, Number.isFinite(t) ? t : 0));
  const to = x >= 0 ? [178, 24, 43] : [33, 102, 172];
  const a = Math.abs(x);
  const c = to.map((v) => Math.round(255 + (v - 255) * a));
  return `rgb(${c[0]},${c[1]},${c[2]})`;
}

// t in [0, 1] -> white to deep blue (square root, so small values stay visible); null -> light grey.
export function sequential(t) {
  if (t === null || t === undefined || !Number.isFinite(t)) return "rgb(235,235,235)";
  const a = Math.sqrt(Math.max(0, Math.min(1, t)));
  const c = [8, 48, 107].map((v) => Math.round(255 + (v - 255) * a));
  return `rgb(${c[0]},${c[1]},${c[2]})`;
}

// Text colour that stays readable on a background produced by the two scales above.
export function inkFor(css) {
  const m = /rgb\((\d+),(\d+),(\d+)\)/.exec(css);
  if (!m) return "#111";
  return (Number(m[1]) + Number(m[2]) + Number(m[3])) / 3 < 140 ? "#fff" : "#111";
}


function fmt(x, d = 3) { return x === null || x === undefined ? "\u2013" : Number(x).toFixed(d); }

function buttons(options, current, onPick) {
  const bar = el("span", "lk-lk-btns");
  options.forEach(([value, label]) => {
    const b = el("button", "lk-lk-btn" + (value === current ? " on" : ""), label);
    b.type = "button";
    b.addEventListener("click", () => onPick(value));
    bar.appendChild(b);
  });
  return bar;
}

// ---------------------------------------------------------------- logit lens

function drawLens(root, spec, state) {
  const colorBy = state.colorBy || spec.color_by || "top";
  const bar = el("div", "lk-lk-bar");
  bar.append(el("span", "lk-lk-lbl", "colour:"), buttons(
    [["top", "top-token probability"], ["target", `target probability (${spec.target_kind})`], ["entropy", "entropy"]],
    colorBy, (v) => { state.colorBy = v; state.redraw(); }));
  root.appendChild(bar);
  const table = el("table", "lk-lk-grid");
  const rows = spec.labels.length, seq = spec.tokens.length;
  const value = (r, p) => colorBy === "target" ? spec.target_probs[r][p]
    : colorBy === "entropy" ? spec.entropy[r][p] / spec.max_entropy : spec.top_probs[r][p][0];
  const info = el("div", "lk-lk-info", "hover a cell for its top tokens; click to pin it");
  const show = (r, p) => {
    info.replaceChildren();
    info.appendChild(el("div", "lk-lk-dhead",
      `after ${spec.labels[r] === "emb" ? "the embeddings" : spec.labels[r] + " block(s)"}, position ${p} (input ${JSON.stringify(spec.tokens[p])})`));
    const ol = el("ol", "lk-lk-topk");
    spec.top_tokens[r][p].forEach((t, i) => ol.appendChild(el("li", null, `${JSON.stringify(t)}  ${fmt(spec.top_probs[r][p][i])}`)));
    info.appendChild(ol);
    if (spec.target_tokens[p]) {
      info.appendChild(el("div", "lk-lk-target",
        `target ${JSON.stringify(spec.target_tokens[p])}: probability ${fmt(spec.target_probs[r][p])}, rank ${spec.target_ranks[r][p]}` +
        ` \u00b7 entropy ${fmt(spec.entropy[r][p], 2)} nats`));
    }
  };
  for (let r = rows - 1; r >= 0; r--) {
    const tr = el("tr");
    tr.appendChild(el("th", "lk-lk-row", spec.labels[r]));
    for (let p = 0; p < seq; p++) {
      const bg = sequential(value(r, p));
      const td = el("td", "lk-lk-cell", visible(spec.top_tokens[r][p][0]));
      td.style.background = bg;
      td.style.color = inkFor(bg);
      td.title = `${spec.top_tokens[r][p][0]} ${fmt(spec.top_probs[r][p][0])}`;
      if (spec.target_ranks[r][p] === 1) td.classList.add("lk-lk-hit");
      td.addEventListener("mouseenter", () => { if (!state.pinned) show(r, p); });
      td.addEventListener("click", () => {
        state.pinned = state.pinned && state.pinned[0] === r && state.pinned[1] === p ? null : [r, p];
        table.querySelectorAll(".lk-lk-pin").forEach((x) => x.classList.remove("lk-lk-pin"));
        if (state.pinned) { td.classList.add("lk-lk-pin"); show(r, p); }
      });
      tr.appendChild(td);
    }
    table.appendChild(tr);
  }
  const foot = el("tr");
  foot.appendChild(el("th", "lk-lk-row", "input"));
  spec.tokens.forEach((t) => foot.appendChild(el("th", "lk-lk-tok", visible(t))));
  table.appendChild(foot);
  const wrap = el("div", "lk-lk-scroll");
  wrap.appendChild(table);
  root.append(wrap, info);
}

// ---------------------------------------------------------------- attribution

function drawAttr(root, spec, state) {
  const shared = state.shared === undefined ? !!spec.shared_scale : state.shared;
  const bar = el("div", "lk-lk-bar");
  bar.append(el("span", "lk-lk-lbl", "scale:"), buttons([[false, "per row"], [true, "shared"]], shared,
    (v) => { state.shared = v; state.redraw(); }));
  root.appendChild(bar);
  const peak = (row) => Math.max(1e-12, ...row.scores.map((s) => Math.abs(s)));
  const all = Math.max(1e-12, ...spec.rows.map(peak));
  spec.rows.forEach((row) => {
    const box = el("div", "lk-lk-arow");
    box.appendChild(el("div", "lk-lk-caption", row.caption));
    const flow = el("div", "lk-lk-flow");
    const scale = shared ? all : peak(row);
    row.tokens.forEach((t, i) => {
      const bg = diverging(row.scores[i] / scale);
      const s = el("span", "lk-lk-atok", visible(t));
      s.style.background = bg;
      s.style.color = inkFor(bg);
      s.title = `${t}: ${fmt(row.scores[i], 4)}`;
      flow.appendChild(s);
    });
    box.appendChild(flow);
    root.appendChild(box);
  });
}

// ---------------------------------------------------------------- neuron

function tokenRow(tokens, acts, scale, center) {
  const flow = el("div", "lk-lk-flow");
  tokens.forEach((t, i) => {
    const bg = diverging(acts[i] / scale);
    const s = el("span", "lk-lk-atok" + (i === center ? " lk-lk-center" : ""), visible(t));
    s.style.background = bg;
    s.style.color = inkFor(bg);
    s.title = `${t}: ${fmt(acts[i], 4)}`;
    flow.appendChild(s);
  });
  return flow;
}

function drawNeuron(root, spec) {
  root.appendChild(el("div", "lk-lk-sub", `layer ${spec.layer}, neuron ${spec.neuron} of ${spec.n_neurons} \u00b7 top-activating contexts`));
  const ctx = el("div", "lk-lk-contexts");
  spec.contexts.forEach((c) => {
    const row = el("div", "lk-lk-ctx");
    row.appendChild(el("span", "lk-lk-act", fmt(c.activation)));
    row.appendChild(tokenRow(c.tokens, c.acts, spec.scale, c.center));
    ctx.appendChild(row);
  });
  root.appendChild(ctx);
  if (spec.promoted.length) {
    const eff = el("div", "lk-lk-effect");
    const list = (name, items) => {
      const d = el("div", "lk-lk-elist");
      d.appendChild(el("span", "lk-lk-lbl", name));
      items.forEach(([t, s]) => { const c = el("span", "lk-lk-chip", visible(t)); c.title = fmt(s, 4); d.appendChild(c); });
      return d;
    };
    eff.append(list("promotes:", spec.promoted), list("suppresses:", spec.suppressed));
    root.appendChild(eff);
  }
  if (spec.texts.length) {
    const det = el("details", "lk-lk-texts");
    const total = spec.n_texts || spec.texts.length;
    det.appendChild(el("summary", null, total > spec.texts.length
      ? `the neuron over the first ${spec.texts.length} of ${total} texts (neuron_view(..., max_texts=${total}) shows all)`
      : `the neuron over ${spec.texts.length} text(s)`));
    spec.texts.forEach((t) => det.appendChild(tokenRow(t.tokens, t.acts, spec.scale, -1)));
    root.appendChild(det);
  }
}

// ---------------------------------------------------------------- patching

function drawPatch(root, spec, state) {
  const three = spec.dims.length === 3;
  const seq = spec.tokens.length;
  const pos = state.pos === undefined ? seq - 1 : state.pos;
  root.appendChild(el("div", "lk-lk-sub",
    `${spec.hook} patched by ${spec.dims.join(" \u00d7 ")} \u00b7 metric clean ${fmt(spec.clean_metric)}, corrupted ${fmt(spec.corrupted_metric)}` +
    " \u00b7 colour: fraction recovered (red 1, white 0, blue < 0)"));
  if (three) {
    const bar = el("div", "lk-lk-bar");
    bar.append(el("span", "lk-lk-lbl", "position:"), buttons(spec.tokens.map((t, i) => [i, `${i}:${visible(t)}`]), pos,
      (v) => { state.pos = v; state.redraw(); }));
    root.appendChild(bar);
  }
  const matrix = spec.recovered.map((row) => three ? row[pos] : Array.isArray(row) ? row : [row]);
  const table = el("table", "lk-lk-grid lk-lk-heat");
  const info = el("div", "lk-lk-info", "hover a cell for its value");
  for (let r = matrix.length - 1; r >= 0; r--) {
    const tr = el("tr");
    tr.appendChild(el("th", "lk-lk-row", spec.rows[r]));
    matrix[r].forEach((v, c) => {
      const bg = diverging(v);
      const td = el("td", "lk-lk-hcell", Math.abs(v) >= 0.1 ? v.toFixed(1) : "");
      td.style.background = bg;
      td.style.color = inkFor(bg);
      td.title = `${spec.rows[r]}, ${spec.cols[c]}: ${fmt(v)}`;
      td.addEventListener("mouseenter", () => { info.textContent = `${spec.rows[r]}, ${spec.cols[c]}: recovers ${fmt(v)}`; });
      tr.appendChild(td);
    });
    table.appendChild(tr);
  }
  const foot = el("tr");
  foot.appendChild(el("th"));
  spec.cols.forEach((c) => foot.appendChild(el("th", "lk-lk-tok", visible(c))));
  table.appendChild(foot);
  const wrap = el("div", "lk-lk-scroll");
  wrap.appendChild(table);
  root.append(wrap, info);
}

// ---------------------------------------------------------------- controls (widgets only)

// controls: [{name, label, type: "text" | "select" | "number", value, options?, min?, max?, numeric?}];
// onControl(name, value) hears a change (numbers for "number" inputs and numeric selects).
function drawControls(root, controls, onControl, busy) {
  if (!controls || !controls.length) return;
  const bar = el("div", "lk-lk-controls");
  controls.forEach((c) => {
    const lab = el("label", "lk-lk-control");
    lab.appendChild(el("span", null, c.label || c.name));
    let input;
    if (c.type === "select") {
      input = el("select");
      c.options.forEach(([v, text]) => { const o = el("option", null, text); o.value = v; input.appendChild(o); });
      input.value = c.value;
    } else {
      input = el("input");
      input.type = c.type === "number" ? "number" : "text";
      if (c.min !== undefined) input.min = c.min;
      if (c.max !== undefined) input.max = c.max;
      input.value = c.value;
      if (c.type === "text") input.size = Math.max(12, Math.min(60, String(c.value).length + 4));
    }
    input.dataset.name = c.name;
    let sent = input.value;
    const send = () => {
      if (input.value === sent) return;
      sent = input.value;
      onControl(c.name, c.type === "number" || c.numeric ? Number(input.value) : input.value);
    };
    input.addEventListener("change", send);
    input.addEventListener("keydown", (e) => {
      e.stopPropagation(); // typed keys belong to the box, not to the notebook's shortcuts
      if (e.key === "Enter") send();
    });
    lab.appendChild(input);
    bar.appendChild(lab);
  });
  if (busy) bar.appendChild(el("span", "lk-lk-busy", busy));
  root.appendChild(bar);
}

const DRAW = { lens: drawLens, attr: drawAttr, neuron: drawNeuron, patch: drawPatch };

// host: a container. spec: one of the four kinds (see the Python spec functions). Returns {update(spec), destroy()}.
export function mount(host, spec, opts = {}) {
  const root = el("div", "labkit-look-view");
  host.appendChild(root);
  const state = { spec };
  state.redraw = () => {
    root.replaceChildren();
    const s = state.spec;
    if (s.title) root.appendChild(el("div", "lk-lk-title", s.title));
    drawControls(root, opts.controls ? opts.controls() : null, opts.onControl, opts.busy ? opts.busy() : "");
    if (s.error) { root.appendChild(el("div", "lk-lk-error", s.error)); return; }
    const draw = DRAW[s.kind];
    if (!draw) { root.appendChild(el("div", "lk-lk-error", `unknown view kind ${JSON.stringify(s.kind)}`)); return; }
    draw(root, s, state);
  };
  state.redraw();
  return {
    update(next) { state.spec = next; state.pinned = null; state.redraw(); },
    destroy() { root.remove(); },
  };
}

// Static pages: mounts the spec beside the inlined script (see mountLiveView in dom.js).
export function mountStatic(script, id) {
  mountLiveView(script, id, "labkit-look", mount);
}

export default {
  render({ model, el: host }) {
    host.classList.add("labkit-look");
    const view = mount(host, model.get("spec") || {}, {
      controls: () => model.get("controls"),
      busy: () => model.get("status"),
      onControl: (name, value) => { model.set(name, value); model.save_changes(); },
    });
    const redraw = () => view.update(model.get("spec") || {});
    model.on("change:spec", redraw);
    model.on("change:status", redraw);
    return () => { model.off("change:spec", redraw); model.off("change:status", redraw); view.destroy(); };
  },
};
