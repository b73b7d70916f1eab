// labkit generation playground: prompt and sampling controls, tokens streaming in, each step's top
// candidates as bars, and the attention of the query that chose a token (click the token).
// Plain DOM, no libraries, no network. Token text only ever goes through textContent.
// Keep to `export function` / `export default` and named imports from "./dom.js" (what the Python inliner handles).

import { el, halfToFloat } from "./dom.js";

// ---------------------------------------------------------------- pure helpers (tested with node)

// bytes + {shape, top_k, offset, nbytes} (labkit-arrays/1) -> Float32Array, pruned entries as zeros.
export function decodeArray(bytes, spec) {
  const n = spec.shape.reduce((a, b) => a * b, 1);
  const dv = new DataView(bytes.buffer, bytes.byteOffset + spec.offset, spec.nbytes);
  const data = new Float32Array(n);
  if (spec.top_k === null || spec.top_k === undefined) {
    for (let i = 0; i < n; i++) data[i] = halfToFloat(dv.getUint16(2 * i, true));
    return data;
  }
  const k = spec.top_k, K = spec.shape[spec.shape.length - 1], rows = n / K, vals = 2 * rows * k;
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < k; j++) {
      const e = r * k + j;
      data[r * K + dv.getUint16(2 * e, true)] = halfToFloat(dv.getUint16(vals + 2 * e, true));
    }
  }
  return data;
}

// attn [L, H, S, K] (flat) -> the weights over keys of one step: one head, or the mean over heads (head null).
export function stepRow(data, shape, layer, head, step) {
  const [, H, S, K] = shape;
  const row = new Float32Array(K);
  const heads = head === null || head === undefined ? [...Array(H).keys()] : [head];
  for (const h of heads) {
    const start = ((layer * H + h) * S + step) * K;
    for (let k = 0; k < K; k++) row[k] += data[start + k] / heads.length;
  }
  return row;
}

// A token's text for display: whitespace made visible, so "\n" and " " can be clicked.
export function visible(text) {
  return String(text).replace(/\n/g, "\u21b5").replace(/\t/g, "\u21e5").replace(/^ +| +$/g, (m) => "\u00b7".repeat(m.length)) || "\u2205";
}

// ---------------------------------------------------------------- DOM

function numberInput(label, model, name, attrs, nullable) {
  const wrap = el("label", "lk-field");
  wrap.appendChild(el("span", "lk-label", label));
  const input = el("input");
  input.type = "number";
  for (const [k, v] of Object.entries(attrs)) input.setAttribute(k, v);
  input.value = model.get(name) === null ? "" : model.get(name);
  input.dataset.trait = name;
  input.addEventListener("change", () => {
    const raw = input.value.trim();
    model.set(name, raw === "" && nullable ? null : Number(raw));
    model.save_changes();
  });
  wrap.appendChild(input);
  return wrap;
}

export default {
  render({ model, el: host }) {
    host.classList.add("labkit-play");
    const box = el("div", "lk-play");
    const controls = el("div", "lk-controls");
    const prompt = el("textarea", "lk-prompt");
    prompt.rows = 2;
    prompt.value = model.get("prompt");
    prompt.placeholder = "prompt";
    prompt.addEventListener("change", () => { model.set("prompt", prompt.value); model.save_changes(); });
    const fields = el("div", "lk-fields");
    fields.append(
      numberInput("temperature", model, "temperature", { min: 0, step: 0.1 }),
      numberInput("top-k", model, "top_k", { min: 0, step: 1 }),
      numberInput("top-p", model, "top_p", { min: 0.01, max: 1, step: 0.05 }),
      numberInput("repeat penalty", model, "repetition_penalty", { min: 0.05, step: 0.05 }),
      numberInput("max tokens", model, "max_new_tokens", { min: 1, step: 1 }),
      numberInput("beams", model, "num_beams", { min: 1, max: 16, step: 1 }),
      numberInput("seed", model, "seed", { step: 1 }, true),
    );
    const go = el("button", "lk-btn lk-generate", "Generate");
    go.addEventListener("click", () => {
      model.set("prompt", prompt.value);
      model.save_changes();
      model.send({ type: "generate" });
    });
    fields.appendChild(go);
    controls.append(prompt, fields);
    const status = el("div", "lk-status");
    const out = el("div", "lk-tokens");
    const side = el("div", "lk-side");
    const attnBar = el("div", "lk-attn-bar");
    const cands = el("div", "lk-cands");
    side.append(attnBar, cands);
    box.append(controls, status, out, side);
    host.appendChild(box);

    // live state: streamed tokens arrive as messages before the traits are set at the end
    let live = null; // {prompt_tokens, tokens, candidates} while streaming
    let arrays = null, arraysKey = null;

    function attention() {
      const header = model.get("header");
      if (!header || !header.arrays || !header.arrays.attn) return null;
      const dv = model.get("payload");
      if (!dv || !dv.byteLength) return null;
      if (arraysKey !== dv) {
        const bytes = new Uint8Array(dv.buffer, dv.byteOffset, dv.byteLength);
        arrays = { shape: header.arrays.attn.shape, data: decodeArray(bytes, header.arrays.attn) };
        arraysKey = dv;
      }
      return arrays;
    }

    function select(i) {
      model.set("selected", i);
      model.save_changes();
      draw();
    }

    function draw() {
      const st = live || { prompt_tokens: model.get("prompt_tokens") || [], tokens: model.get("tokens") || [],
        candidates: model.get("candidates") || [] };
      const sel = live ? null : model.get("selected");
      const err = model.get("error");
      status.textContent = err ? err : (model.get("running") || live ? "generating\u2026 " + st.tokens.length + " tokens" : model.get("status"));
      status.className = "lk-status" + (err ? " lk-error" : "");
      go.disabled = !!(model.get("running") || live);
      for (const input of fields.querySelectorAll("input")) {
        const v = model.get(input.dataset.trait);
        if (document.activeElement !== input) input.value = v === null ? "" : v;
      }
      const A = sel !== null && sel !== undefined && !live ? attention() : null;
      const row = A ? stepRow(A.data, A.shape, Math.min(model.get("layer"), A.shape[0] - 1), model.get("head"), sel) : null;
      const all = st.prompt_tokens.map((t) => ({ text: t, prompt: true })).concat(st.tokens.map((t, i) => ({ text: t.text, index: i })));
      let max = 0;
      if (row) for (let k = 0; k < row.length; k++) max = Math.max(max, row[k]);
      out.replaceChildren();
      all.forEach((t, pos) => {
        const span = el("span", "lk-tok" + (t.prompt ? " lk-prompt-tok" : " lk-gen-tok"), visible(t.text));
        if (!t.prompt) {
          span.title = "step " + t.index + ": click for its candidates and attention";
          span.addEventListener("click", () => select(t.index === sel ? null : t.index));
          if (t.index === sel) span.classList.add("lk-selected");
        }
        if (row && pos < row.length && row[pos] > 0) {
          const w = row[pos] / (max || 1);
          span.style.background = `rgba(255, 140, 0, ${(0.08 + 0.77 * w).toFixed(3)})`;
          span.style.color = "#111"; // keep the token readable on the strongest weights
          span.title = (span.title ? span.title + "\n" : "") + "attention " + row[pos].toFixed(3);
        }
        out.appendChild(span);
      });
      // layer / head selectors for the attention
      attnBar.replaceChildren();
      const L = model.get("n_layer"), H = model.get("n_head");
      if (sel !== null && sel !== undefined && !live) {
        if (L) {
          attnBar.appendChild(el("span", "lk-label", "attention of the query that chose it \u2014 layer "));
          const ls = el("select", "lk-layer");
          for (let l = 0; l < L; l++) { const o = el("option", null, String(l)); o.value = l; ls.appendChild(o); }
          ls.value = model.get("layer");
          ls.addEventListener("change", () => { model.set("layer", Number(ls.value)); model.save_changes(); draw(); });
          const hs = el("select", "lk-head");
          const mean = el("option", null, "mean of heads"); mean.value = ""; hs.appendChild(mean);
          for (let h = 0; h < H; h++) { const o = el("option", null, "head " + h); o.value = h; hs.appendChild(o); }
          hs.value = model.get("head") === null ? "" : model.get("head");
          hs.addEventListener("change", () => { model.set("head", hs.value === "" ? null : Number(hs.value)); model.save_changes(); draw(); });
          attnBar.append(ls, hs);
        } else {
          attnBar.appendChild(el("span", "lk-label", "this model has no attention to show"));
        }
      }
      // candidate bars of the selected (or, while streaming, the latest) step
      const idx = sel !== null && sel !== undefined ? sel : st.tokens.length - 1;
      cands.replaceChildren();
      if (idx >= 0 && st.candidates[idx]) {
        const chosen = st.tokens[idx];
        cands.appendChild(el("div", "lk-cands-head", "step " + idx + ": top candidates (chosen: " + visible(chosen.text) +
          ", p = " + Number(chosen.p).toFixed(3) + ")"));
        for (const [text, p, id] of st.candidates[idx]) {
          const line = el("div", "lk-cand" + (id === chosen.id ? " lk-chosen" : ""));
          const bar = el("span", "lk-bar");
          bar.style.width = (100 * p).toFixed(1) + "%";
          const barBox = el("span", "lk-barbox");
          barBox.appendChild(bar);
          line.append(el("span", "lk-cand-tok", visible(text)), barBox, el("span", "lk-pct", (100 * p).toFixed(1) + "%"));
          cands.appendChild(line);
        }
      }
    }

    const onMsg = (msg) => {
      if (!msg || typeof msg !== "object") return;
      if (msg.type === "start") live = { prompt_tokens: msg.prompt_tokens || [], tokens: [], candidates: [] };
      else if (msg.type === "token" && live) { live.tokens.push(msg.token); live.candidates.push(msg.candidates); }
      else if (msg.type === "done") live = null;
      draw();
    };
    model.on("msg:custom", onMsg);
    const names = ["tokens", "candidates", "payload", "header", "selected", "layer", "head", "status", "error", "running",
      "prompt_tokens", "temperature", "top_k", "top_p", "repetition_penalty", "max_new_tokens", "num_beams", "seed"];
    const redraw = () => { if (!live) draw(); };
    for (const n of names) model.on("change:" + n, redraw);
    const onPrompt = () => { if (document.activeElement !== prompt) prompt.value = model.get("prompt"); };
    model.on("change:prompt", onPrompt);
    draw();
    return () => {
      model.off("msg:custom", onMsg);
      for (const n of names) model.off("change:" + n, redraw);
      model.off("change:prompt", onPrompt);
      box.remove();
    };
  },
};
