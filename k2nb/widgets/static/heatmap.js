// RoutingHeatmap view: token strip + channel overview + layers × experts canvas.
// All routing arrives once as binary buffers ([T, L, k] uint16 ids, uint8 weights); selection,
// aggregation and hover are computed here, so nothing waits for the kernel.

function bytesOf(v) {
  if (!v) return new Uint8Array(0);
  if (v instanceof DataView || ArrayBuffer.isView(v)) return new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
  if (v instanceof ArrayBuffer) return new Uint8Array(v);
  return new Uint8Array(0);
}

function typed(v, Ctor) {
  const b = bytesOf(v);
  const size = Ctor.BYTES_PER_ELEMENT;
  const n = Math.floor(b.byteLength / size);
  // Buffers can start at an odd offset inside a websocket frame; typed views need alignment.
  if (b.byteOffset % size === 0) return new Ctor(b.buffer, b.byteOffset, n);
  return new Ctor(b.slice(0, n * size).buffer);
}

// viridis, 9 stops: perceptually even and readable on light and dark backgrounds
const STOPS = [
  [68, 1, 84], [71, 44, 122], [59, 81, 139], [44, 113, 142], [33, 144, 141],
  [39, 173, 129], [92, 200, 99], [170, 220, 50], [253, 231, 37],
];
const LUT = (() => {
  const lut = new Uint8Array(256 * 3);
  for (let i = 0; i < 256; i++) {
    const x = (i / 255) * (STOPS.length - 1);
    const j = Math.min(Math.floor(x), STOPS.length - 2);
    const f = x - j;
    for (let c = 0; c < 3; c++) lut[i * 3 + c] = Math.round(STOPS[j][c] * (1 - f) + STOPS[j + 1][c] * f);
  }
  return lut;
})();

function cssVar(el, name, fallback) {
  const v = getComputedStyle(el).getPropertyValue(name).trim();
  return v || fallback;
}

function hexToRgb(hex) {
  const h = hex.replace("#", "");
  return [parseInt(h.slice(0, 2), 16), parseInt(h.slice(2, 4), 16), parseInt(h.slice(4, 6), 16)];
}

function parseColor(el, css) {
  // canvas needs concrete numbers for ImageData; resolve any CSS colour through a 1px canvas
  const c = document.createElement("canvas");
  c.width = c.height = 1;
  const x = c.getContext("2d");
  x.fillStyle = css;
  x.fillRect(0, 0, 1, 1);
  const d = x.getImageData(0, 0, 1, 1).data;
  return [d[0], d[1], d[2]];
}

function h(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

function showToken(text) {
  if (text === "") return "∅";
  return text.replace(/\n/g, "↵").replace(/\t/g, "⇥").replace(/\r/g, "");
}

function fmt(x, d = 3) {
  if (!isFinite(x)) return "–";
  return x.toFixed(d);
}

function render({ model, el }) {
  const root = h("div", "k2nb-hm");
  el.appendChild(root);
  const style = h("style");
  root.appendChild(style);

  const head = h("div", "k2nb-hm-head");
  const title = h("span", "k2nb-hm-title");
  const stats = h("span", "k2nb-hm-stats");
  const modes = h("div", "k2nb-hm-modes");
  const btnWeight = h("button", "k2nb-hm-mode", "Routing weight");
  const btnLoad = h("button", "k2nb-hm-mode", "Token load");
  btnWeight.title = "mean routing weight per token of the selection";
  btnLoad.title = "share of the selection's tokens routed to each expert";
  modes.append(btnWeight, btnLoad);
  head.append(title, stats, modes);

  const legend = h("div", "k2nb-hm-legend");
  const strip = h("div", "k2nb-hm-strip");
  strip.setAttribute("tabindex", "0");
  const overview = h("canvas", "k2nb-hm-overview");
  const gridWrap = h("div", "k2nb-hm-gridwrap");
  const grid = h("canvas", "k2nb-hm-grid");
  const tip = h("div", "k2nb-hm-tip");
  gridWrap.append(grid, tip);
  const foot = h("div", "k2nb-hm-foot");
  const scale = h("canvas", "k2nb-hm-scale");
  const scaleLo = h("span", "k2nb-hm-scale-lo");
  const scaleHi = h("span", "k2nb-hm-scale-hi");
  const scaleName = h("span", "k2nb-hm-scale-name");
  const hint = h("span", "k2nb-hm-hint", "click a token · shift-click for a span · drag on the bar above the grid");
  foot.append(scaleName, scaleLo, scale, scaleHi, hint);
  root.append(head, legend, strip, overview, gridWrap, foot);

  // ---- state --------------------------------------------------------------------------------
  let T = 0, L = 0, K = 0, E = 0, start = 0;
  let ex = new Uint16Array(0), wq = new Uint8Array(0), wscale = 1;
  let ids = new Int32Array(0), chans = new Uint8Array(0), owner = new Int32Array(0);
  let texts = [], nodeIds = [], nodeKinds = [], layerIds = [];
  let chanNames = [], chanLabels = [], chanColors = [], chanRgb = [];
  let sel = [0, 0]; // token indices [a, b)
  let anchor = 0;
  let agg = null; // {load, wsum, balance, n, vmax}
  let layout = null;
  let spans = [];
  let prevSel = [0, 0];

  function load() {
    T = model.get("n_tokens"); L = model.get("n_layers"); K = model.get("top_k");
    E = model.get("n_experts"); start = model.get("start");
    ex = typed(model.get("experts"), Uint16Array);
    wq = typed(model.get("weights"), Uint8Array);
    wscale = model.get("weight_scale");
    ids = typed(model.get("token_ids"), Int32Array);
    chans = typed(model.get("channels"), Uint8Array);
    owner = typed(model.get("token_node"), Int32Array);
    texts = model.get("token_text") || [];
    nodeIds = model.get("node_ids") || [];
    nodeKinds = model.get("node_kinds") || [];
    layerIds = model.get("layer_ids") || [];
    chanNames = model.get("channel_names");
    chanLabels = model.get("channel_labels");
    chanColors = model.get("channel_colors");
    chanRgb = chanColors.map(hexToRgb);
    title.textContent = model.get("title");
    // channel colours are data (from Python), so the rules are generated rather than hard-coded
    style.textContent = chanColors
      .map((c, i) => {
        const [r, g, b] = chanRgb[i];
        return `.k2nb-hm .k2nb-tok.ch${i}{background:rgba(${r},${g},${b},0.16);border-bottom-color:${c}}` +
          `.k2nb-hm .k2nb-tok.ch${i}.sel{background:rgba(${r},${g},${b},0.5);}` +
          `.k2nb-hm .k2nb-chip.ch${i}::before{background:${c}}`;
      })
      .join("\n");
    buildLegend();
    buildStrip();
    readSelection();
  }

  function readSelection() {
    let s = model.get("selection");
    if (!s || s.length < 2) s = [start, start];
    let a = Math.max(0, Math.min(T, s[0] - start));
    let b = Math.max(0, Math.min(T, s[1] - start));
    if (b <= a) { a = 0; b = T; }
    sel = [a, b];
    agg = null;
  }

  function buildLegend() {
    legend.textContent = "";
    const counts = new Array(chanNames.length).fill(0);
    for (let i = 0; i < chans.length; i++) counts[chans[i]]++;
    counts.forEach((n, i) => {
      if (!n) return;
      const chip = h("span", `k2nb-chip ch${i}`, `${chanLabels[i]} `);
      chip.appendChild(h("span", "k2nb-chip-n", String(n)));
      chip.title = `${n} ${chanLabels[i]} tokens`;
      legend.appendChild(chip);
    });
    const dims = h("span", "k2nb-hm-dims", `${T} tokens · ${L} MoE layers · ${E} experts · top-${K}`);
    legend.appendChild(dims);
  }

  function buildStrip() {
    strip.textContent = "";
    spans = new Array(T);
    const frag = document.createDocumentFragment();
    for (let i = 0; i < T; i++) {
      const s = document.createElement("span");
      s.className = `k2nb-tok ch${chans[i] ?? 0}`;
      s.textContent = texts.length === T ? showToken(texts[i]) : String(ids[i] ?? i);
      s.dataset.i = i;
      spans[i] = s;
      frag.appendChild(s);
    }
    strip.appendChild(frag);
    prevSel = [0, 0];
  }

  function markStrip(scroll) {
    const [pa, pb] = prevSel;
    for (let i = pa; i < pb; i++) if (i < sel[0] || i >= sel[1]) spans[i]?.classList.remove("sel");
    for (let i = sel[0]; i < sel[1]; i++) if (i < pa || i >= pb) spans[i]?.classList.add("sel");
    prevSel = [sel[0], sel[1]];
    if (scroll && spans[sel[0]]) {
      const s = spans[sel[0]];
      const top = s.offsetTop - strip.offsetTop;
      if (top < strip.scrollTop || top > strip.scrollTop + strip.clientHeight - 20) strip.scrollTop = Math.max(0, top - 8);
    }
  }

  // ---- aggregation over the selection (typed-array loops: ~2M adds for 4k tokens at K2 scale) --
  function aggregate() {
    const [a, b] = sel;
    const n = b - a;
    const loadArr = new Float32Array(L * E);
    const wsum = new Float32Array(L * E);
    const LK = L * K;
    for (let t = a; t < b; t++) {
      const base = t * LK;
      for (let l = 0; l < L; l++) {
        const row = l * E, off = base + l * K;
        for (let j = 0; j < K; j++) {
          const e = ex[off + j];
          if (e < E) { loadArr[row + e] += 1; wsum[row + e] += wq[off + j]; }
        }
      }
    }
    const balance = new Float32Array(L);
    const argmax = new Int32Array(L);
    let vmax = 0;
    for (let l = 0; l < L; l++) {
      let mx = 0, arg = 0, sum = 0;
      for (let e = 0; e < E; e++) {
        const v = loadArr[l * E + e];
        sum += v;
        if (v > mx) { mx = v; arg = e; }
        wsum[l * E + e] = (wsum[l * E + e] * wscale) / Math.max(n, 1);
      }
      const mean = sum / E;
      balance[l] = mean > 0 ? mx / mean : 0;
      argmax[l] = arg;
    }
    const mode = model.get("mode");
    for (let i = 0; i < L * E; i++) {
      const v = mode === "load" ? loadArr[i] / Math.max(n, 1) : wsum[i];
      if (v > vmax) vmax = v;
    }
    agg = { load: loadArr, wsum, balance, argmax, n, vmax, mode };
  }

  function valueAt(l, e) {
    return agg.mode === "load" ? agg.load[l * E + e] / Math.max(agg.n, 1) : agg.wsum[l * E + e];
  }

  // ---- drawing ------------------------------------------------------------------------------
  function setupCanvas(c, w, hgt) {
    const dpr = window.devicePixelRatio || 1;
    c.width = Math.max(1, Math.round(w * dpr));
    c.height = Math.max(1, Math.round(hgt * dpr));
    c.style.width = `${w}px`;
    c.style.height = `${hgt}px`;
    const ctx = c.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    return ctx;
  }

  function drawGrid() {
    if (!agg) aggregate();
    const W = Math.max(320, gridWrap.clientWidth || 720);
    const left = 46, right = 92, top = 18, bottom = 26;
    const avail = W - left - right;
    const cw = Math.min(28, Math.max(avail / Math.max(E, 1), 0.5));
    const rh = Math.max(4, Math.min(22, Math.floor(440 / Math.max(L, 1))));
    const gw = cw * E, gh = rh * L;
    const H = top + gh + bottom;
    const ctx = setupCanvas(grid, left + gw + right, H);
    layout = { left, top, cw, rh, gw, gh, right };
    const fg = cssVar(root, "--jp-ui-font-color1", "#333");
    const fg2 = cssVar(root, "--jp-ui-font-color2", "#777");
    const empty = parseColor(root, cssVar(root, "--jp-layout-color2", "#eeeeee"));
    ctx.clearRect(0, 0, left + gw + right, H);

    // cells: an E×L image scaled up without smoothing (one pass, no per-cell fillRect)
    if (E > 0 && L > 0) {
      const img = new ImageData(E, L);
      const inv = agg.vmax > 0 ? 255 / agg.vmax : 0;
      for (let l = 0; l < L; l++) {
        for (let e = 0; e < E; e++) {
          const v = valueAt(l, e);
          const p = (l * E + e) * 4;
          if (v > 0) {
            // sqrt keeps rarely used experts visible next to hot ones
            const q = Math.min(255, Math.round(Math.sqrt(v * inv / 255) * 255)) * 3;
            img.data[p] = LUT[q]; img.data[p + 1] = LUT[q + 1]; img.data[p + 2] = LUT[q + 2];
          } else {
            img.data[p] = empty[0]; img.data[p + 1] = empty[1]; img.data[p + 2] = empty[2];
          }
          img.data[p + 3] = 255;
        }
      }
      const off = document.createElement("canvas");
      off.width = E; off.height = L;
      off.getContext("2d").putImageData(img, 0, 0);
      ctx.imageSmoothingEnabled = false;
      ctx.drawImage(off, left, top, gw, gh);
    }
    // separators between layers when rows are tall enough to need them
    if (rh >= 9) {
      ctx.strokeStyle = cssVar(root, "--jp-layout-color0", "#fff");
      ctx.globalAlpha = 0.6;
      ctx.lineWidth = 1;
      ctx.beginPath();
      for (let l = 1; l < L; l++) { ctx.moveTo(left, top + l * rh + 0.5); ctx.lineTo(left + gw, top + l * rh + 0.5); }
      if (cw >= 9) for (let e = 1; e < E; e++) { ctx.moveTo(left + e * cw + 0.5, top); ctx.lineTo(left + e * cw + 0.5, top + gh); }
      ctx.stroke();
      ctx.globalAlpha = 1;
    }
    // axes
    ctx.fillStyle = fg2;
    ctx.font = "10px var(--jp-ui-font-family, sans-serif)";
    ctx.textAlign = "right"; ctx.textBaseline = "middle";
    const lstep = Math.max(1, Math.ceil(12 / rh));
    for (let l = 0; l < L; l += lstep) ctx.fillText(`L${layerIds[l] ?? l}`, left - 5, top + l * rh + rh / 2);
    ctx.textAlign = "center"; ctx.textBaseline = "top";
    const estep = [1, 2, 4, 8, 16, 32, 64, 128, 256].find((s) => s * cw >= 26) || 512;
    for (let e = 0; e < E; e += estep) {
      ctx.fillText(String(e), left + e * cw + cw / 2, top + gh + 5);
      ctx.fillRect(left + e * cw + cw / 2, top + gh, 1, 3);
    }
    ctx.textAlign = "left"; ctx.textBaseline = "alphabetic";
    ctx.fillStyle = fg;
    ctx.font = "600 10px var(--jp-ui-font-family, sans-serif)";
    ctx.fillText("MoE layer × expert", left, 11);
    ctx.textAlign = "center";
    ctx.fillText("max/mean", left + gw + right / 2 + 4, 11);

    // per-layer balance bars: max load ÷ mean load over the selection
    const bx = left + gw + 10, bw = right - 16;
    let bmax = 2;
    for (let l = 0; l < L; l++) bmax = Math.max(bmax, agg.balance[l]);
    for (let l = 0; l < L; l++) {
      const v = agg.balance[l];
      const y = top + l * rh + (rh >= 6 ? 1 : 0);
      const bh = Math.max(1, rh - (rh >= 6 ? 2 : 0));
      ctx.fillStyle = cssVar(root, "--jp-layout-color2", "#eee");
      ctx.fillRect(bx, y, bw, bh);
      ctx.fillStyle = v < 1.5 ? "#3ea64f" : v < 3 ? "#e0912f" : "#d6453d";
      ctx.fillRect(bx, y, (bw * v) / bmax, bh);
      if (rh >= 11) {
        ctx.fillStyle = fg;
        ctx.textAlign = "left"; ctx.textBaseline = "middle";
        ctx.font = "10px var(--jp-ui-font-family, sans-serif)";
        ctx.fillText(fmt(v, 2), bx + 3, y + bh / 2);
      }
    }
    // the balance of a perfectly even layer (1.0)
    ctx.strokeStyle = fg2;
    ctx.setLineDash([2, 2]);
    ctx.beginPath();
    ctx.moveTo(bx + bw / bmax + 0.5, top); ctx.lineTo(bx + bw / bmax + 0.5, top + gh);
    ctx.stroke();
    ctx.setLineDash([]);
    drawScale();
  }

  function drawScale() {
    const ctx = setupCanvas(scale, 120, 10);
    for (let x = 0; x < 120; x++) {
      const q = Math.round((x / 119) * 255) * 3;
      ctx.fillStyle = `rgb(${LUT[q]},${LUT[q + 1]},${LUT[q + 2]})`;
      ctx.fillRect(x, 0, 1, 10);
    }
    scaleName.textContent = agg.mode === "load" ? "token share" : "mean weight";
    scaleLo.textContent = "0";
    scaleHi.textContent = agg.mode === "load" ? `${fmt(agg.vmax * 100, 1)}%` : fmt(agg.vmax, 3);
  }

  function drawOverview() {
    const W = Math.max(320, gridWrap.clientWidth || 720);
    const H = 16;
    const ctx = setupCanvas(overview, W, H);
    ctx.clearRect(0, 0, W, H);
    if (!T) return;
    // one column per pixel (or per token when few): the channel of the token under it
    const cols = Math.min(W, T);
    const colW = W / cols;
    for (let x = 0; x < cols; x++) {
      const t = Math.min(T - 1, Math.floor((x * T) / cols));
      ctx.fillStyle = chanColors[chans[t]] || "#999";
      ctx.fillRect(x * colW, 3, Math.ceil(colW), H - 6);
    }
    const x0 = (sel[0] / T) * W, x1 = (sel[1] / T) * W;
    ctx.fillStyle = "rgba(255,255,255,0.55)";
    ctx.fillRect(0, 3, x0, H - 6);
    ctx.fillRect(x1, 3, W - x1, H - 6);
    ctx.strokeStyle = cssVar(root, "--jp-ui-font-color0", "#111");
    ctx.lineWidth = 1.5;
    ctx.strokeRect(x0 + 0.75, 1, Math.max(2, x1 - x0 - 1.5), H - 2);
  }

  function channelCounts(a, b) {
    const counts = new Array(chanNames.length).fill(0);
    for (let i = a; i < b; i++) counts[chans[i]]++;
    return counts;
  }

  function updateStats() {
    const [a, b] = sel;
    const n = b - a;
    const parts = [];
    if (n === 1) {
      const t = texts.length === T ? `“${showToken(texts[a])}” ` : "";
      parts.push(`token ${start + a} ${t}(id ${ids[a]}, ${chanLabels[chans[a]]})`);
    } else {
      parts.push(`tokens ${start + a}–${start + b - 1} (${n})`);
      const c = channelCounts(a, b);
      const mix = c.map((v, i) => (v ? `${chanLabels[i]} ${v}` : "")).filter(Boolean).join(", ");
      if (mix) parts.push(mix);
    }
    if (agg && L) {
      let s = 0;
      for (let l = 0; l < L; l++) s += agg.balance[l];
      parts.push(`mean balance ${fmt(s / L, 2)}`);
    }
    stats.textContent = parts.join(" · ");
    btnWeight.classList.toggle("on", model.get("mode") !== "load");
    btnLoad.classList.toggle("on", model.get("mode") === "load");
  }

  let raf = 0;
  function redraw(scrollStrip) {
    if (raf) cancelAnimationFrame(raf);
    raf = requestAnimationFrame(() => {
      raf = 0;
      const t0 = performance.now();
      agg = null;
      aggregate();
      drawGrid();
      drawOverview();
      markStrip(scrollStrip);
      updateStats();
      root.dataset.selection = `${start + sel[0]},${start + sel[1]}`;
      root.dataset.drawn = String((Number(root.dataset.drawn) || 0) + 1);
      root.dataset.drawMs = (performance.now() - t0).toFixed(1); // read by the browser test
    });
  }

  function commit() {
    model.set("selection", [start + sel[0], start + sel[1]]);
    model.save_changes();
  }

  // ---- interaction --------------------------------------------------------------------------
  strip.addEventListener("click", (ev) => {
    const t = ev.target.closest ? ev.target.closest(".k2nb-tok") : null;
    if (!t) return;
    const i = Number(t.dataset.i);
    if (ev.shiftKey) sel = [Math.min(anchor, i), Math.max(anchor, i) + 1];
    else { sel = [i, i + 1]; anchor = i; }
    redraw(false);
    commit();
  });
  strip.addEventListener("mouseover", (ev) => {
    const t = ev.target.closest ? ev.target.closest(".k2nb-tok") : null;
    if (!t || t.title) return;
    const i = Number(t.dataset.i);
    const node = owner[i] >= 0 ? ` · node ${nodeIds[owner[i]]} (${nodeKinds[owner[i]] ?? ""})` : "";
    const text = texts.length === T ? ` “${texts[i]}”` : "";
    t.title = `position ${start + i} · id ${ids[i]}${text} · ${chanLabels[chans[i]]}${node}`;
  });

  let dragging = false;
  function tokenAtOverview(ev) {
    const r = overview.getBoundingClientRect();
    return Math.max(0, Math.min(T - 1, Math.floor(((ev.clientX - r.left) / r.width) * T)));
  }
  overview.addEventListener("mousedown", (ev) => {
    if (!T) return;
    dragging = true;
    const i = tokenAtOverview(ev);
    if (ev.shiftKey) sel = [Math.min(anchor, i), Math.max(anchor, i) + 1];
    else { anchor = i; sel = [i, i + 1]; }
    redraw(true);
    ev.preventDefault();
  });
  window.addEventListener("mousemove", onDrag);
  window.addEventListener("mouseup", onUp);
  function onDrag(ev) {
    if (!dragging) return;
    const i = tokenAtOverview(ev);
    sel = [Math.min(anchor, i), Math.max(anchor, i) + 1];
    redraw(true);
  }
  function onUp() {
    if (!dragging) return;
    dragging = false;
    commit();
  }

  grid.addEventListener("mousemove", (ev) => {
    if (!layout || !agg) return;
    const r = grid.getBoundingClientRect();
    const x = ev.clientX - r.left, y = ev.clientY - r.top;
    const { left, top, cw, rh, gw, gh } = layout;
    const l = Math.floor((y - top) / rh);
    if (l < 0 || l >= L) { tip.style.display = "none"; return; }
    const [a, b] = sel;
    let lines = null;
    if (x >= left && x < left + gw && y < top + gh) {
      const e = Math.floor((x - left) / cw);
      if (e < 0 || e >= E) { tip.style.display = "none"; return; }
      const rows = [];
      if (b - a === 1) {
        const tt = texts.length === T ? ` “${showToken(texts[a])}”` : "";
        rows.push(["token", `${start + a}${tt} · id ${ids[a]} · ${chanLabels[chans[a]]}`]);
      } else rows.push(["tokens", `${start + a}–${start + b - 1} (${b - a})`]);
      rows.push(["layer", `${layerIds[l] ?? l} (MoE layer ${l + 1} of ${L})`]);
      rows.push(["expert", `${e} of ${E}`]);
      if (b - a === 1) {
        let rank = -1;
        const off = a * L * K + l * K;
        for (let j = 0; j < K; j++) if (ex[off + j] === e) rank = j;
        rows.push(["weight", rank >= 0 ? `${fmt(wq[off + rank] * wscale, 4)} (choice ${rank + 1} of ${K})` : "not routed here"]);
      } else {
        const n = agg.load[l * E + e];
        rows.push(["load", `${n} of ${b - a} tokens (${fmt((100 * n) / (b - a), 1)}%)`]);
        rows.push(["weight", `${fmt(agg.wsum[l * E + e], 4)} mean per token`]);
      }
      lines = rows;
    } else if (x >= left + gw + 6) {
      const E0 = agg.argmax[l];
      lines = [
        ["layer", `${layerIds[l] ?? l}`],
        ["balance", `${fmt(agg.balance[l], 2)} (max ÷ mean load)`],
        ["busiest", `expert ${E0}: ${agg.load[l * E + E0]} of ${b - a} tokens`],
      ];
    }
    if (!lines) { tip.style.display = "none"; return; }
    tip.textContent = "";
    for (const [k, v] of lines) {
      const row = h("div", "k2nb-tip-row");
      row.append(h("span", "k2nb-tip-k", k), h("span", "k2nb-tip-v", v));
      tip.appendChild(row);
    }
    tip.style.display = "block";
    const wrapR = gridWrap.getBoundingClientRect();
    let tx = ev.clientX - wrapR.left + 14, ty = ev.clientY - wrapR.top + 14;
    if (tx + tip.offsetWidth > wrapR.width) tx = ev.clientX - wrapR.left - tip.offsetWidth - 10;
    tip.style.left = `${Math.max(0, tx)}px`;
    tip.style.top = `${ty}px`;
  });
  grid.addEventListener("mouseleave", () => { tip.style.display = "none"; });

  btnWeight.addEventListener("click", () => { model.set("mode", "weight"); model.save_changes(); });
  btnLoad.addEventListener("click", () => { model.set("mode", "load"); model.save_changes(); });

  // ---- model events -------------------------------------------------------------------------
  const onData = () => { load(); redraw(true); };
  const onSel = () => {
    const s = model.get("selection");
    if (!s || s.length < 2) return; // an empty span (a node without tokens here) keeps the view
    if (s[0] - start === sel[0] && s[1] - start === sel[1]) return;
    readSelection();
    redraw(true);
  };
  const onMode = () => redraw(false);
  model.on("change:experts", onData);
  model.on("change:channels", onData);
  model.on("change:token_text", onData);
  model.on("change:selection", onSel);
  model.on("change:mode", onMode);

  const ro = new ResizeObserver(() => redraw(false));
  ro.observe(gridWrap);
  load();
  redraw(true);

  return () => {
    ro.disconnect();
    window.removeEventListener("mousemove", onDrag);
    window.removeEventListener("mouseup", onUp);
    model.off("change:experts", onData);
    model.off("change:channels", onData);
    model.off("change:token_text", onData);
    model.off("change:selection", onSel);
    model.off("change:mode", onMode);
  };
}

export default { render };
