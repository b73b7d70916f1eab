// labkit LoRA explorer: a rank slider with the trainable parameters and their share of the model, and (for a
// trained adapter) the singular values of each learned update as small bars. anywidget ES module; no libraries.
// Keep to `export function` / `export default`. Module names only ever go through textContent.

import { el } from "./dom.js";

// rank r, unit = sum(in + out) over adapted layers, base = model parameters -> {trainable, total, share}.
export function loraCount(rank, unit, base) {
  const trainable = rank * unit;
  const total = base + trainable;
  return { trainable, total, share: total ? trainable / total : 0 };
}

const STYLE = ".labkit-lora{font:12px/1.35 system-ui,sans-serif;color:#222;background:#fff;padding:6px}" +
  ".labkit-lora .lk-lo-row{display:flex;align-items:center;gap:8px}.labkit-lora input[type=range]{width:280px}" +
  ".labkit-lora .lk-lo-count{font-weight:600}.labkit-lora .lk-lo-track{width:300px;height:10px;background:#eee;margin:4px 0}" +
  ".labkit-lora .lk-lo-fill{height:10px;background:#4c78a8}.labkit-lora .lk-lo-sv{display:flex;align-items:flex-end;gap:1px;height:40px}" +
  ".labkit-lora .lk-lo-sv div{width:6px;background:#f58518}.labkit-lora .lk-lo-mod{margin-top:4px;color:#555}";

export default {
  render({ model, el: host }) {
    host.classList.add("labkit-lora");
    host.appendChild(el("style", null, STYLE));
    const row = el("div", "lk-lo-row");
    const range = el("input");
    range.type = "range"; range.min = "1"; range.step = "1";
    const label = el("span", "lk-lo-rank");
    row.append(el("span", null, "rank"), range, label);
    const count = el("div", "lk-lo-count");
    const track = el("div", "lk-lo-track");
    const fill = el("div", "lk-lo-fill");
    track.appendChild(fill);
    const layers = el("div", "lk-lo-mod");
    const spectrum = el("div", "lk-lo-spectrum");
    host.append(row, count, track, layers, spectrum);
    function draw() {
      const r = model.get("rank");
      range.max = String(model.get("max_rank"));
      range.value = String(r);
      const c = loraCount(r, model.get("unit"), model.get("base_parameters"));
      label.textContent = `r = ${r}`;
      count.textContent = `${c.trainable.toLocaleString()} trainable of ${c.total.toLocaleString()} parameters ` +
        `(${(100 * c.share).toFixed(3)}%)`;
      fill.style.width = `${Math.min(100, 100 * c.share).toFixed(2)}%`;
      const ls = model.get("layers") || [];
      layers.textContent = `${ls.length} adapted layers (${model.get("targets")}), each adding r \u00d7 (in + out)`;
    }
    function drawSpectrum() {
      spectrum.replaceChildren();
      const sv = model.get("spectrum") || {};
      const names = Object.keys(sv);
      if (!names.length) return;
      spectrum.appendChild(el("div", "lk-lo-mod", "singular values of each learned update \u0394W = B A \u00b7 scale"));
      const top = Math.max(1e-12, ...names.map((n) => Math.max(0, ...sv[n])));
      names.slice(0, 24).forEach((n) => {
        const line = el("div", "lk-lo-row");
        const bars = el("div", "lk-lo-sv");
        sv[n].forEach((v) => { const b = el("div"); b.style.height = `${Math.max(1, 40 * v / top).toFixed(1)}px`; b.title = v.toPrecision(3); bars.appendChild(b); });
        line.append(el("span", null, n), bars);
        spectrum.appendChild(line);
      });
    }
    range.addEventListener("input", () => {
      const r = Number(range.value);
      model.set("rank", r); // Python recomputes trainable/total/share; the page draws the same numbers now
      model.save_changes();
      draw();
    });
    draw(); drawSpectrum();
    model.on("change:rank", draw);
    model.on("change:spectrum", drawSpectrum);
    return () => { model.off("change:rank", draw); model.off("change:spectrum", drawSpectrum); };
  },
};
