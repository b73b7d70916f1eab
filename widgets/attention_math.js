// labkit attention math walk-through: a slider over steps that Python rendered as HTML panels.
// Static pages (labkit.viz.attention_math) inline this file as a classic script and call mountStatic();
// anywidget calls default.render(). The step panels are built and escaped in Python; this code only
// shows one at a time and, in the widget, syncs step/layer/head. Token text never passes through here.
// Keep to `export function` / `export default` and named imports from "./dom.js" (what the Python inliner handles).

import { el, numberSelect } from "./dom.js";

// Clamp a wanted step into 0..n-1 (n >= 1); non-numbers go to 0.
export function clampStep(step, n) {
  const s = Math.round(Number(step));
  if (!Number.isFinite(s) || n < 1) return 0;
  return Math.max(0, Math.min(n - 1, s));
}

// Show panel `step` of the `.lk-am-step` sections under root, hide the rest.
export function showStep(root, step) {
  const panels = root.querySelectorAll(".lk-am-step");
  const s = clampStep(step, panels.length);
  panels.forEach((p, i) => p.classList.toggle("lk-am-on", i === s));
  return s;
}

// Build the slider bar into `bar`: prev, range, next, and a label naming the step. onStep(s) hears changes.
export function buildBar(bar, n, names, step, onStep) {
  bar.replaceChildren();
  const prev = el("button", "lk-am-btn", "\u25c0");
  const next = el("button", "lk-am-btn", "\u25b6");
  const range = el("input", "lk-am-range");
  range.type = "range"; range.min = "0"; range.max = String(Math.max(0, n - 1)); range.step = "1";
  range.value = String(clampStep(step, n));
  const label = el("span", "lk-am-label");
  const set = (s) => {
    s = clampStep(s, n);
    range.value = String(s);
    label.textContent = `step ${s + 1} of ${n}: ${names[s] || ""}`;
    onStep(s);
  };
  prev.type = next.type = "button";
  prev.addEventListener("click", () => set(Number(range.value) - 1));
  next.addEventListener("click", () => set(Number(range.value) + 1));
  range.addEventListener("input", () => set(Number(range.value)));
  bar.append(prev, range, next, label);
  return { set, quiet(s) { s = clampStep(s, n); range.value = String(s); label.textContent = `step ${s + 1} of ${n}: ${names[s] || ""}`; } };
}

// Static pages: every step is in the page; once this runs, the slider shows one at a time.
export function mountStatic(script, id) {
  let box = script && script.parentNode;
  if (!box || !box.classList || !box.classList.contains("labkit-am")) box = document.getElementById(id);
  if (!box || box.dataset.mounted) return;
  box.dataset.mounted = "1";
  const steps = box.querySelector(".lk-am-steps");
  const names = Array.from(steps.querySelectorAll(".lk-am-step h4")).map((h) => h.textContent.replace(/^\d+\.\s*/, ""));
  box.classList.add("lk-am-live");
  const bar = buildBar(box.querySelector(".lk-am-bar"), names.length, names, Number(box.dataset.step || 0),
    (s) => showStep(steps, s));
  bar.set(Number(box.dataset.step || 0));
}

function select(label, n, value, onChange) {
  return numberSelect("lk-am-ctl", label, [...Array(n).keys()].map((i) => [i, String(i)]), value, onChange);
}

// The editor of from_matrices: one text box per matrix, a causal switch, a button and the last error.
// Typing changes nothing until "compute" (or Ctrl+Enter): half-typed matrices would only produce errors.
export function buildEditor(box, matrices, causal, onSubmit) {
  box.replaceChildren();
  const names = ["X", "W_Q", "W_K", "W_V"];
  const areas = {};
  const grid = el("div", "lk-am-edit");
  for (const name of names) {
    const cell = el("label", "lk-am-mat", name);
    const area = el("textarea");
    area.value = (matrices && matrices[name]) || "";
    area.rows = Math.max(2, area.value.split("\n").length);
    area.spellcheck = false;
    area.addEventListener("keydown", (ev) => { if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) submit(); });
    cell.appendChild(area);
    grid.appendChild(cell);
    areas[name] = area;
  }
  const row = el("div", "lk-am-editbar");
  const check = el("input");
  check.type = "checkbox";
  check.checked = !!causal;
  const lab = el("label", "lk-am-ctl");
  lab.append(check, " causal mask");
  const go = el("button", "lk-am-btn", "compute");
  go.type = "button";
  const err = el("span", "lk-am-error");
  function submit() {
    const out = {};
    for (const name of names) out[name] = areas[name].value;
    onSubmit(out, check.checked);
  }
  go.addEventListener("click", submit);
  check.addEventListener("change", submit);
  row.append(go, lab, err);
  box.append(grid, row);
  return { setError(text) { err.textContent = text || ""; } };
}

export default {
  render({ model, el: host }) {
    host.classList.add("labkit-am", "lk-am-live");
    const top = el("div", "lk-am-top");
    const header = el("div", "lk-am-header");
    const barBox = el("div", "lk-am-bar");
    const steps = el("div", "lk-am-steps");
    host.append(top, header, barBox, steps);
    let bar = null;
    let editor = null;
    const push = (name, value) => { model.set(name, value); model.save_changes(); };
    function controls() {
      if (model.get("editable")) {
        if (!editor) {
          top.classList.add("lk-am-top-edit");
          editor = buildEditor(top, model.get("matrices"), model.get("causal"), (mats, causal) => {
            model.set("causal", causal); model.set("matrices", mats); model.save_changes();
          });
        }
        editor.setError(model.get("error"));
        return;
      }
      top.replaceChildren(select("layer", model.get("n_layer"), model.get("layer"), (v) => push("layer", v)),
        select("head", model.get("n_head"), model.get("head"), (v) => push("head", v)));
    }
    function content() {
      // the panels are escaped HTML built by labkit.viz.attention_math (no user text unescaped)
      header.innerHTML = model.get("header_html") || "";
      steps.innerHTML = model.get("steps_html") || "";
      const names = model.get("step_names") || [];
      bar = buildBar(barBox, names.length, names, model.get("step"), (s) => {
        showStep(steps, s);
        if (s !== model.get("step")) push("step", s);
      });
      bar.quiet(model.get("step"));
      showStep(steps, model.get("step"));
      controls();
    }
    const onStep = () => { if (bar) bar.quiet(model.get("step")); showStep(steps, model.get("step")); };
    content();
    model.on("change:steps_html", content);
    model.on("change:step", onStep);
    model.on("change:layer", controls);
    model.on("change:head", controls);
    model.on("change:error", controls);
    return () => {
      model.off("change:error", controls);
      model.off("change:steps_html", content); model.off("change:step", onStep);
      model.off("change:layer", controls); model.off("change:head", controls);
    };
  },
};
