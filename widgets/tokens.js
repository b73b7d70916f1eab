// labkit tokenizer explorer: coloured tokens with ids, counts per tokenizer, BPE merges of a hovered/clicked token.
// One ES module for both hosts: anywidget calls `default.render({model, el})` (a text box; Python re-tokenizes);
// static pages (labkit.viz.tokens) inline it as a classic script and call `mountStatic`.
// Plain DOM, no libraries, no network. Token text only ever goes through textContent.
// Keep to `export function` / `export default` and named imports from "./dom.js" (what the Python inliner handles).

import { el, mountLiveView } from "./dom.js";

const WS = { " ": "\u00b7", "\n": "\u21b5", "\t": "\u2192", "\r": "\u240d" };
const PALETTE = ["#fde68a", "#bbf7d0", "#bfdbfe", "#fbcfe8", "#ddd6fe", "#fed7aa"];

// Space, newline, tab, CR -> visible stand-ins (the same map as labkit.viz.tokens.visible_whitespace).
export function visibleWhitespace(s) {
  let out = "";
  for (const ch of String(s)) out += WS[ch] || ch;
  return out;
}

// Indices of the tokens whose character span overlaps [start, end) (an empty span matches its position).
export function overlapping(tokens, start, end) {
  const hits = [];
  tokens.forEach((t, i) => {
    const a = t.start, b = Math.max(t.end, t.start);
    const hit = end > start ? (a < end && b > start) || (a === b && a >= start && a < end) : (a <= start && b > start) || a === start;
    if (hit) hits.push(i);
  });
  return hits;
}

// "left right" merges -> readable lines "left + right -> leftright" (whitespace made visible).
export function mergeLines(merges) {
  return (merges || []).map((m) => {
    const cut = m.indexOf(" ");
    const a = m.slice(0, cut), b = m.slice(cut + 1);
    return `${visibleWhitespace(a)} + ${visibleWhitespace(b)} \u2192 ${visibleWhitespace(a + b)}`;
  });
}

function shown(t) { return t.text ? visibleWhitespace(t.text) : t.token; }

function describe(run, i) {
  const t = run.tokens[i];
  const box = el("div", "lk-tk-detail");
  box.appendChild(el("div", "lk-tk-dhead",
    `${run.name}: token ${i} \u00b7 id ${t.id} \u00b7 vocabulary entry ${JSON.stringify(t.token)} \u00b7 text ${JSON.stringify(t.text)}` +
    ` \u00b7 chars ${t.start}\u2013${t.end}${t.special ? " \u00b7 special" : ""}`));
  const lines = mergeLines(t.merges);
  if (lines.length) {
    box.appendChild(el("div", "lk-tk-mtitle", `${lines.length} merge${lines.length > 1 ? "s" : ""} built it:`));
    const ol = el("ol", "lk-tk-merges");
    lines.forEach((l) => ol.appendChild(el("li", null, l)));
    box.appendChild(ol);
  } else {
    box.appendChild(el("div", "lk-tk-mtitle", t.special ? "a special token (no merges)" : "no merges (a single symbol, or not a BPE tokenizer)"));
  }
  return box;
}

// host: a container. spec: {text, runs: [{name, kind, vocab_size, n_tokens, n_chars, chars_per_token, truncated,
// tokens: [{id, token, text, start, end, merges, special}]}], title, editable}. onText(text) hears typing.
// Returns {update(spec), destroy()}; update keeps the text box (and its focus) and redraws the tokens.
export function mount(host, spec, onText) {
  const root = el("div", "labkit-tok-view");
  host.appendChild(root);
  let st = spec, pinned = null;
  const title = el("div", "lk-tk-title");
  const area = el("textarea", "lk-tk-input");
  area.rows = 3; area.spellcheck = false; area.value = spec.text || "";
  const panels = el("div", "lk-tk-panels");
  const info = el("div", "lk-tk-info");
  root.append(title);
  if (spec.editable) {
    root.appendChild(area);
    let timer = null;
    area.addEventListener("input", () => {
      clearTimeout(timer);
      timer = setTimeout(() => onText && onText(area.value), 120); // type freely; tokenize after a pause
    });
  }
  root.append(panels, info);

  function highlight(ri, i, on) {
    const t = st.runs[ri].tokens[i];
    panels.querySelectorAll(".lk-tk-run").forEach((p, rj) => {
      const hits = new Set(overlapping(st.runs[rj].tokens, t.start, t.end));
      p.querySelectorAll(".lk-tk").forEach((s, j) => s.classList.toggle("lk-tk-hl", on && hits.has(j)));
    });
  }
  function showInfo(ri, i) {
    info.replaceChildren(ri === null ? el("div", "lk-tk-hint", "hover a token for its id and merges; click to pin it") : describe(st.runs[ri], i));
  }
  function draw() {
    title.textContent = st.title || "";
    panels.replaceChildren();
    st.runs.forEach((run, ri) => {
      const p = el("div", "lk-tk-run");
      p.appendChild(el("div", "lk-tk-name", `${run.name} \u00b7 ${run.kind}, vocab ${run.vocab_size.toLocaleString()}`));
      p.appendChild(el("div", "lk-tk-stats", `${run.n_tokens} tokens \u00b7 ${run.n_chars} chars \u00b7 ${run.chars_per_token.toFixed(2)} chars/token`));
      const flow = el("div", "lk-tk-flow");
      run.tokens.forEach((t, i) => {
        const s = el("span", "lk-tk" + (t.special ? " lk-tk-special" : ""));
        s.style.background = t.special ? "#e5e7eb" : PALETTE[i % PALETTE.length];
        s.title = `id ${t.id}`;
        s.append(el("span", "lk-tk-t", shown(t)), el("span", "lk-tk-id", t.id));
        s.addEventListener("mouseenter", () => { highlight(ri, i, true); if (!pinned) showInfo(ri, i); });
        s.addEventListener("mouseleave", () => { highlight(ri, i, false); if (!pinned) showInfo(null); });
        s.addEventListener("click", () => {
          pinned = pinned && pinned[0] === ri && pinned[1] === i ? null : [ri, i];
          panels.querySelectorAll(".lk-tk-pin").forEach((x) => x.classList.remove("lk-tk-pin"));
          if (pinned) { s.classList.add("lk-tk-pin"); showInfo(ri, i); } else showInfo(null);
        });
        flow.appendChild(s);
        if (t.text.includes("\n")) flow.appendChild(el("br"));
      });
      if (run.truncated) {
        flow.appendChild(el("span", "lk-tk-more", `\u2026 ${run.n_tokens - run.tokens.length} more tokens not shown ` +
          `(the first ${run.tokens.length} of ${run.n_tokens}; pass max_tokens=${run.n_tokens} to show all)`));
      }
      p.appendChild(flow);
      panels.appendChild(p);
    });
    pinned = null;
    showInfo(null);
  }
  draw();
  return {
    update(next) { st = next; if (!st.editable || document.activeElement !== area) area.value = st.text || ""; draw(); },
    destroy() { root.remove(); },
  };
}

// Static pages: mounts the spec beside the inlined script (see mountLiveView in dom.js).
export function mountStatic(script, id) {
  mountLiveView(script, id, "labkit-tok", mount);
}

function specFromModel(model) {
  return { text: model.get("text"), runs: model.get("runs") || [], title: model.get("title"), editable: true };
}

export default {
  render({ model, el: host }) {
    host.classList.add("labkit-tok");
    const view = mount(host, specFromModel(model), (text) => { model.set("text", text); model.save_changes(); });
    const redraw = () => view.update(specFromModel(model));
    model.on("change:runs", redraw);
    return () => { model.off("change:runs", redraw); view.destroy(); };
  },
};
