// The kernel-free model page: a small language model running in the browser through ONNX Runtime Web.
// Everything is inside the one HTML file: the model (gzip + base64), the runtime's WebAssembly (gzip +
// base64, handed over as env.wasm.wasmBinary), the runtime's ES module (imported from a blob: URL) and the
// tokenizer (tokenizer.js). Opened from disk it makes no request at all: nothing is fetched.
//
// The model is a GPT exported with its KV cache and attention patterns as inputs/outputs (see
// labkit.export.onnx): typing runs one pass over the prompt (candidates and attention), generating feeds one
// token at a time with the cache.

function bytesFromBase64(text) {
  if (typeof Uint8Array.fromBase64 === "function") return Uint8Array.fromBase64(text);
  const bin = atob(text);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

async function gunzip(bytes) {
  const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

function payload(id) {
  return gunzip(bytesFromBase64(document.getElementById(id).textContent.trim()));
}

/** Seeded random numbers in [0, 1) (mulberry32), so a seed gives the same samples every time. */
export function randomSource(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Logits in, probabilities after temperature, top-k and top-p out (temperature 0: all mass on the argmax). */
export function warp(logits, { temperature = 1, topK = 0, topP = 1 } = {}) {
  const n = logits.length;
  const probs = new Float64Array(n);
  if (!(temperature > 0)) {
    let best = 0;
    for (let i = 1; i < n; i++) if (logits[i] > logits[best]) best = i;
    probs[best] = 1;
    return probs;
  }
  let max = -Infinity;
  for (let i = 0; i < n; i++) max = Math.max(max, logits[i] / temperature);
  let sum = 0;
  for (let i = 0; i < n; i++) sum += probs[i] = Math.exp(logits[i] / temperature - max);
  for (let i = 0; i < n; i++) probs[i] /= sum;
  const order = Array.from(probs.keys()).sort((a, b) => probs[b] - probs[a]);
  const keep = new Set();
  let mass = 0;
  for (const i of order) {
    if ((topK > 0 && keep.size >= topK) || (keep.size > 0 && mass >= topP)) break;
    keep.add(i);
    mass += probs[i];
  }
  let kept = 0;
  for (let i = 0; i < n; i++) if (keep.has(i)) kept += probs[i];
  for (let i = 0; i < n; i++) probs[i] = keep.has(i) ? probs[i] / kept : 0;
  return probs;
}

function pick(probs, rand) {
  let r = rand();
  for (let i = 0; i < probs.length; i++) {
    r -= probs[i];
    if (r < 0) return i;
  }
  let last = 0;
  for (let i = 0; i < probs.length; i++) if (probs[i] > 0) last = i;
  return last;
}

function topCandidates(probs, k) {
  return Array.from(probs.keys())
    .sort((a, b) => probs[b] - probs[a])
    .slice(0, k)
    .filter((i) => probs[i] > 0);
}

function visible(text) {
  return text.replace(/ /g, "\u2423").replace(/\n/g, "\u21b5").replace(/\t/g, "\u21e5") || "\u2205";
}

/** The model behind the page: prompt ids in, last-position logits, cache and attention out. */
async function loadModel(spec) {
  const source = document.getElementById("labkit-ort").textContent;
  const url = URL.createObjectURL(new Blob([source], { type: "text/javascript" }));
  const ort = await import(url);
  URL.revokeObjectURL(url);
  ort.env.wasm.numThreads = 1; // threads need cross-origin isolation, which a file:// page never has
  ort.env.wasm.proxy = false;
  ort.env.wasm.wasmBinary = await payload("labkit-wasm");
  const session = await ort.InferenceSession.create(await payload("labkit-model"), {
    executionProviders: ["wasm"],
    graphOptimizationLevel: "all",
  });
  const io = spec.io;
  const pastNames = Object.keys(io.inputs).filter((n) => n.startsWith("past."));

  function emptyPast() {
    const feeds = {};
    for (const name of pastNames) {
      const dims = io.inputs[name].map((d) => (d === "batch" ? 1 : d === "past_sequence" ? 0 : d));
      feeds[name] = new ort.Tensor("float32", new Float32Array(0), dims);
    }
    return feeds;
  }

  async function run(ids, past) {
    const feeds = { input_ids: new ort.Tensor("int64", BigInt64Array.from(ids, BigInt), [1, ids.length]), ...past };
    const out = await session.run(feeds);
    const vocab = spec.model.vocab_size;
    const logits = out.logits.data.slice((ids.length - 1) * vocab, ids.length * vocab);
    const next = {};
    for (const name of pastNames) next[name] = out["present." + name.slice(5)];
    return { logits, past: next, attentions: out.attentions };
  }

  return { run, emptyPast, session };
}

function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c);
  return node;
}

/** Builds the page in `root` once the model is loaded; returns the API the tests and benchmarks drive. */
export async function mountPage(root, spec, makeTokenizer) {
  const t0 = performance.now();
  const tok = makeTokenizer(spec.tokenizer);
  const status = root.querySelector(".lk-status");
  const model = await loadModel(spec);
  const block = spec.model.block_size;
  const timings = { loadMs: performance.now() - t0, firstPredictionMs: null, msPerToken: null };

  const prompt = root.querySelector(".lk-prompt");
  const candidatesBox = root.querySelector(".lk-candidates");
  const tokensBox = root.querySelector(".lk-tokens");
  const heat = root.querySelector(".lk-heatmap");
  const sliders = {};
  for (const name of ["temperature", "top_k", "top_p", "max_new_tokens", "seed"]) {
    sliders[name] = root.querySelector(`[name=${name}]`);
    const shown = root.querySelector(`[data-show=${name}]`);
    const update = () => (shown.textContent = sliders[name].value);
    sliders[name].addEventListener("input", () => {
      update();
      if (name !== "max_new_tokens" && name !== "seed") refresh();
    });
    update();
  }
  const layerSel = root.querySelector("[name=layer]");
  const headSel = root.querySelector("[name=head]");
  for (let i = 0; i < spec.model.n_layer; i++) layerSel.append(h("option", { value: i }, `layer ${i}`));
  for (let i = 0; i < spec.model.n_head; i++) headSel.append(h("option", { value: i }, `head ${i}`));
  layerSel.value = spec.model.n_layer - 1;
  const options = () => ({
    temperature: Number(sliders.temperature.value),
    topK: Number(sliders.top_k.value),
    topP: Number(sliders.top_p.value),
  });

  let state = null; // the last pass over the prompt: ids, logits, attentions
  let query = null; // the token whose attention the chips show (null = the last one)

  function encodePrompt(text) {
    const ids = tok.encode(text);
    const cut = ids.length > block ? ids.slice(ids.length - block) : ids;
    return { ids: cut, dropped: ids.length - cut.length };
  }

  async function predict(text) {
    const { ids, dropped } = encodePrompt(text);
    if (!ids.length) return { ids, dropped, logits: null, attentions: null };
    const out = await model.run(ids, model.emptyPast());
    return { ids, dropped, logits: out.logits, attentions: out.attentions };
  }

  function drawCandidates() {
    candidatesBox.replaceChildren();
    if (!state || !state.logits) {
      candidatesBox.append(h("p", { class: "lk-note" }, "Type some text to see what the model expects next."));
      return;
    }
    const probs = warp(state.logits, options());
    for (const id of topCandidates(probs, 10)) {
      const p = probs[id];
      const bar = h("span", { class: "lk-bar" });
      bar.style.width = `${(100 * p).toFixed(1)}%`;
      const row = h(
        "button",
        { class: "lk-candidate", "data-id": id, title: "append this token" },
        h("span", { class: "lk-token" }, visible(tok.token(id))),
        h("span", { class: "lk-track" }, bar),
        h("span", { class: "lk-prob" }, `${(100 * p).toFixed(1)}%`),
      );
      row.addEventListener("click", () => append([id]));
      candidatesBox.append(row);
    }
  }

  function attentionRow(q) {
    const a = state.attentions;
    const [, , heads, t, k] = a.dims;
    const layer = Number(layerSel.value);
    const head = Number(headSel.value);
    const base = ((layer * heads + head) * t + q) * k;
    return a.data.subarray(base, base + k);
  }

  function drawAttention() {
    tokensBox.replaceChildren();
    const ctx = heat.getContext("2d");
    ctx.clearRect(0, 0, heat.width, heat.height);
    if (!state || !state.attentions) return;
    const t = state.ids.length;
    const q = query === null || query >= t ? t - 1 : query;
    const row = attentionRow(q);
    state.ids.forEach((id, i) => {
      const chip = h("span", { class: "lk-chip" + (i === q ? " lk-query" : ""), "data-index": i }, visible(tok.token(id)));
      const w = i <= q ? row[i] : 0;
      chip.style.background = `rgba(37, 99, 235, ${Math.min(1, w).toFixed(3)})`;
      chip.style.color = w > 0.5 ? "white" : "";
      chip.title = `attention from token ${q} to token ${i}: ${(100 * w).toFixed(1)}%`;
      chip.addEventListener("click", () => {
        query = i;
        drawAttention();
      });
      tokensBox.append(chip);
    });
    const cell = Math.max(2, Math.floor(Math.min(heat.width, heat.height) / t));
    for (let i = 0; i < t; i++) {
      const r = attentionRow(i);
      for (let j = 0; j <= i; j++) {
        ctx.fillStyle = `rgba(37, 99, 235, ${Math.min(1, r[j]).toFixed(3)})`;
        ctx.fillRect(j * cell, i * cell, cell, cell);
      }
    }
    ctx.strokeStyle = "#f59e0b";
    ctx.strokeRect(0, q * cell, (q + 1) * cell, cell);
  }

  let pending = null;
  async function refresh() {
    const text = prompt.value;
    const mine = (pending = {});
    const result = await predict(text);
    if (pending !== mine) return; // a newer keystroke is on its way
    state = result;
    drawCandidates();
    drawAttention();
    const note = result.dropped ? ` (the first ${result.dropped} tokens are beyond the model's context)` : "";
    status.textContent = `${result.ids.length} tokens${note}`;
    if (timings.firstPredictionMs === null && result.logits) {
      timings.firstPredictionMs = performance.now();
      root.dataset.ready = "true";
    }
  }

  function append(ids) {
    prompt.value += tok.decode(ids);
    refresh();
  }

  /** Sample `n` tokens after `text` with the cache; returns {ids, text, msPerToken}. */
  async function generate(text, n, opts = options(), seed = 0) {
    const rand = randomSource(seed);
    let { ids } = encodePrompt(text);
    const produced = [];
    let out = await model.run(ids, model.emptyPast());
    let cached = ids.length;
    const start = performance.now();
    for (let step = 0; step < n; step++) {
      const next = pick(warp(out.logits, opts), rand);
      produced.push(next);
      ids = ids.concat([next]);
      if (cached + 1 > block) {
        // the context is full: start again from the last half of it (one pass), then continue with the cache
        ids = ids.slice(ids.length - Math.floor(block / 2));
        out = await model.run(ids, model.emptyPast());
        cached = ids.length;
      } else {
        out = await model.run([next], out.past);
        cached += 1;
      }
    }
    const ms = n ? (performance.now() - start) / n : 0;
    timings.msPerToken = ms;
    return { ids: produced, text: tok.decode(produced), msPerToken: ms };
  }

  root.querySelector(".lk-generate").addEventListener("click", async (event) => {
    const button = event.currentTarget;
    button.disabled = true;
    try {
      const n = Number(sliders.max_new_tokens.value);
      const result = await generate(prompt.value, n, options(), Number(sliders.seed.value));
      prompt.value += result.text;
      status.textContent = `${n} tokens at ${result.msPerToken.toFixed(1)} ms per token`;
      await refresh();
    } finally {
      button.disabled = false;
    }
  });
  prompt.addEventListener("input", () => refresh());
  layerSel.addEventListener("change", drawAttention);
  headSel.addEventListener("change", drawAttention);
  await refresh();
  return {
    timings,
    tokenizer: tok,
    predict,
    generate,
    refresh,
    warp,
    /** Last-position logits for `text`, as a plain array (parity tests). */
    async logits(text) {
      const r = await predict(text);
      return r.logits ? Array.from(r.logits) : null;
    },
  };
}

/** Entry point of the page: reads the spec next to this script and mounts the view. */
export function startPage(makeTokenizer) {
  const root = document.getElementById("labkit-page");
  const spec = JSON.parse(document.getElementById("labkit-spec").textContent);
  window.labkitPage = mountPage(root, spec, makeTokenizer).catch((err) => {
    root.querySelector(".lk-status").textContent = `could not start the model: ${err.message || err}`;
    root.dataset.error = String(err.message || err);
    throw err;
  });
}
