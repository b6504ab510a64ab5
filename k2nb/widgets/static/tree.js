// ReasoningTree view: rows (one per trajectory node) rendered as a collapsible outline.
// Rows arrive as compact records; the DOM is rebuilt from them on every (throttled) push, keeping
// the user's collapsed/expanded choices, the selection and the scroll position.

const KIND_NAME = {
  root: "question", path: "path", attempt: "attempt", thinking: "thinking", tool_call: "tool call",
  observation: "observation", verification: "verify", answer: "answer", error: "error",
};
const STATUS = {
  running: ["", "running"], done: ["✓", "done"], failed: ["✗", "failed"],
  cancelled: ["⊘", "cancelled"], rolled_back: ["↺", "rolled back"],
};

function h(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = text;
  return e;
}

function fmtDur(s) {
  if (s === null || s === undefined) return "";
  if (s < 1) return `${Math.round(s * 1000)} ms`;
  if (s < 60) return `${s.toFixed(1)} s`;
  return `${Math.floor(s / 60)} m ${Math.round(s % 60)} s`;
}

function render({ model, el }) {
  const root = h("div", "k2nb-tree");
  el.appendChild(root);
  const head = h("div", "k2nb-tree-head");
  const title = h("span", "k2nb-tree-title");
  const counts = h("span", "k2nb-tree-counts");
  const btnOpen = h("button", "k2nb-tree-btn", "expand all");
  const btnClose = h("button", "k2nb-tree-btn", "collapse all");
  head.append(title, counts, btnOpen, btnClose);
  const body = h("div", "k2nb-tree-body");
  body.setAttribute("role", "tree");
  const detail = h("div", "k2nb-tree-detail");
  root.append(head, body, detail);

  const collapsed = new Set();
  const touched = new Set(); // nodes the user opened or closed: defaults no longer apply to them
  let rows = [];
  let byId = new Map();

  function defaults() {
    // rolled-back attempts start closed: the retry is what the reader wants first
    for (const r of rows) {
      if (touched.has(r.id)) continue;
      if (r.kind === "attempt" && r.status === "rolled_back" && r.children.length) collapsed.add(r.id);
    }
  }

  function visible() {
    const out = [];
    const rootRow = rows.find((r) => r.parent === null);
    if (!rootRow) return out;
    const stack = [[rootRow.id, 0]];
    while (stack.length) {
      const [id, depth] = stack.pop();
      const r = byId.get(id);
      if (!r) continue;
      out.push([r, depth]);
      if (collapsed.has(id)) continue;
      for (let i = r.children.length - 1; i >= 0; i--) stack.push([r.children[i], depth + 1]);
    }
    return out;
  }

  function badge(kind) {
    const b = h("span", "k2nb-kind", KIND_NAME[kind] || kind);
    b.style.background = (model.get("kind_colors") || {})[kind] || "#777";
    return b;
  }

  function renderRows() {
    rows = model.get("nodes") || [];
    byId = new Map(rows.map((r) => [r.id, r]));
    defaults();
    const atBottom = body.scrollTop + body.clientHeight >= body.scrollHeight - 4;
    const keep = body.scrollTop;
    body.textContent = "";
    const sel = model.get("selected_node");
    const frag = document.createDocumentFragment();
    for (const [r, depth] of visible()) {
      const row = h("div", `k2nb-row k2nb-st-${r.status}`);
      row.dataset.id = r.id;
      row.dataset.kind = r.kind;
      row.setAttribute("role", "treeitem");
      if (r.id === sel) row.classList.add("sel");
      if (r.status === "rolled_back") row.classList.add("gone");
      if (r.traced === false) {
        row.classList.add("untraced");
        row.title = "not in the routing trace shown (another path)";
      }
      row.style.paddingLeft = `${4 + depth * 16}px`;
      const tw = h("span", "k2nb-twisty", r.children.length ? (collapsed.has(r.id) ? "▸" : "▾") : "");
      row.appendChild(tw);
      row.appendChild(badge(r.kind));
      const [icon, word] = STATUS[r.status] || ["", r.status];
      const st = h("span", `k2nb-status k2nb-status-${r.status}`, icon);
      st.title = word;
      row.appendChild(st);
      const label = h("span", "k2nb-label", r.label || (r.kind === "thinking" ? "…" : ""));
      label.title = r.text || r.label || "";
      row.appendChild(label);
      for (const c of r.checks || []) {
        row.appendChild(h("span", `k2nb-check k2nb-check-${c}`, c === "passed" ? "✓" : c === "failed" ? "✗" : "…"));
      }
      const meta = [];
      if (r.n) meta.push(`${r.n} tok`);
      if (r.dur) meta.push(fmtDur(r.dur));
      if (r.children.length && collapsed.has(r.id)) meta.push(`${r.children.length} hidden`);
      row.appendChild(h("span", "k2nb-meta", meta.join(" · ")));
      frag.appendChild(row);
    }
    body.appendChild(frag);
    body.scrollTop = atBottom && model.get("version") > 1 ? body.scrollHeight : keep;
    const n = (k) => rows.filter((r) => r.kind === k).length;
    const running = rows.some((r) => r.status === "running" && r.kind !== "root");
    const parts = [`${rows.length} nodes`];
    if (n("tool_call")) parts.push(`${n("tool_call")} tool call${n("tool_call") > 1 ? "s" : ""}`);
    if (n("path") > 1) parts.push(`${n("path")} paths`);
    const rb = rows.filter((r) => r.kind === "attempt" && r.status === "rolled_back").length;
    if (rb) parts.push(`${rb} rollback${rb > 1 ? "s" : ""}`);
    counts.textContent = parts.join(" · ");
    counts.classList.toggle("live", running);
    title.textContent = model.get("title");
    root.dataset.nodes = String(rows.length);
    renderDetail();
  }

  function renderDetail() {
    const id = model.get("selected_node");
    const r = byId.get(id);
    detail.textContent = "";
    if (!r) {
      detail.appendChild(h("div", "k2nb-detail-empty", "Choose a node to read it; its tokens light up in the routing heatmap."));
      return;
    }
    const d = model.get("detail") || {};
    const full = d.id === id ? d.text : r.text;
    const top = h("div", "k2nb-detail-head");
    top.append(badge(r.kind), h("span", "k2nb-detail-id", `${r.id} · ${(STATUS[r.status] || ["", r.status])[1]}`));
    if (r.span) top.append(h("span", "k2nb-detail-span", `tokens ${r.span[0]}–${r.span[1] - 1}`));
    if (r.dur) top.append(h("span", "k2nb-detail-span", fmtDur(r.dur)));
    detail.appendChild(top);
    if (r.kind === "tool_call" && r.name) detail.appendChild(h("div", "k2nb-detail-name", r.name));
    detail.appendChild(h("pre", "k2nb-detail-text", full || "(no text)"));
  }

  body.addEventListener("click", (ev) => {
    const row = ev.target.closest ? ev.target.closest(".k2nb-row") : null;
    if (!row) return;
    const id = row.dataset.id;
    if (ev.target.classList.contains("k2nb-twisty")) {
      touched.add(id);
      if (collapsed.has(id)) collapsed.delete(id); else collapsed.add(id);
      renderRows();
      return;
    }
    const r = byId.get(id);
    model.set("selected_node", id);
    // set the span here too, so a linked heatmap follows even while the kernel is busy
    model.set("selected_span", r && r.span && r.traced !== false ? r.span : []);
    model.save_changes();
  });
  body.addEventListener("dblclick", (ev) => {
    const row = ev.target.closest ? ev.target.closest(".k2nb-row") : null;
    if (!row) return;
    touched.add(row.dataset.id);
    if (collapsed.has(row.dataset.id)) collapsed.delete(row.dataset.id); else collapsed.add(row.dataset.id);
    renderRows();
  });
  btnOpen.addEventListener("click", () => { for (const r of rows) touched.add(r.id); collapsed.clear(); renderRows(); });
  btnClose.addEventListener("click", () => {
    for (const r of rows) {
      touched.add(r.id);
      if (r.children.length && r.parent !== null) collapsed.add(r.id);
    }
    renderRows();
  });

  const onSel = () => {
    // a selection from elsewhere (Python, a linked panel) may point inside a closed branch
    const id = model.get("selected_node");
    let p = byId.get(id)?.parent;
    while (p) { collapsed.delete(p); p = byId.get(p)?.parent; }
    const r = byId.get(id);
    if (r && r.span && r.traced !== false && JSON.stringify(model.get("selected_span")) !== JSON.stringify(r.span)) {
      model.set("selected_span", r.span);
      model.save_changes();
    }
    renderRows();
    const rowEl = body.querySelector(`.k2nb-row[data-id="${CSS.escape(id)}"]`);
    if (rowEl) rowEl.scrollIntoView({ block: "nearest" });
  };
  model.on("change:nodes", renderRows);
  model.on("change:detail", renderDetail);
  model.on("change:selected_node", onSel);
  renderRows();
  return () => {
    model.off("change:nodes", renderRows);
    model.off("change:detail", renderDetail);
    model.off("change:selected_node", onSel);
  };
}

export default { render };
