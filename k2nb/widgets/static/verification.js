// VerificationPanel view: the verdict, then one card per check (status, name, evidence, node).
// The verdict's words come from Python (k2nb.agent.verdict): "4 of 4 checks passed", what failed,
// what could not be established. It says what the checks found, never that the answer is true.

const VERDICT_ICON = { passed: "✓", partial: "✓", failed: "✗", inconclusive: "…", none: "–" };
const WHY = "what these checks established about the run; passing them does not prove the answer right";
const ICON = { passed: "✓", failed: "✗", pending: "…" };

function h(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = text;
  return e;
}

function render({ model, el }) {
  const root = h("div", "k2nb-vp");
  el.appendChild(root);

  function draw() {
    root.textContent = "";
    const checks = model.get("checks") || [];
    const v = model.get("verdict") || "none";
    const head = h("div", "k2nb-vp-head");
    head.appendChild(h("span", "k2nb-vp-title", model.get("title")));
    const badge = h("span", `k2nb-vp-verdict k2nb-v-${v}`);
    badge.append(h("span", "k2nb-vp-icon", VERDICT_ICON[v] || "–"), h("span", "", model.get("headline")));
    badge.title = WHY;
    head.appendChild(badge);
    root.appendChild(head);
    const detail = model.get("detail");
    if (detail) root.appendChild(h("div", "k2nb-vp-detail", detail));
    root.dataset.verdict = v;

    const answer = model.get("answer");
    if (answer) {
      const a = h("div", "k2nb-vp-answer");
      a.append(h("span", "k2nb-vp-answer-k", "answer"), h("span", "k2nb-vp-answer-v", answer));
      root.appendChild(a);
    }

    const list = h("div", "k2nb-vp-list");
    if (!checks.length) list.appendChild(h("div", "k2nb-vp-empty", "No checks yet."));
    const sel = model.get("selected_node");
    for (const c of checks) {
      const card = h("div", `k2nb-vp-check k2nb-c-${c.status}`);
      if (c.superseded || c.other_path) card.classList.add("superseded");
      if (c.node && c.node === sel) card.classList.add("sel");
      card.dataset.check = c.id;
      const top = h("div", "k2nb-vp-check-head");
      top.append(h("span", `k2nb-vp-status k2nb-s-${c.status}`, ICON[c.status] || "?"));
      top.append(h("span", "k2nb-vp-name", c.name));
      if (c.kind && c.kind !== c.name) top.append(h("span", "k2nb-vp-kind", c.kind));
      if (c.superseded) top.append(h("span", "k2nb-vp-tag", "superseded by a retry"));
      else if (c.other_path) top.append(h("span", "k2nb-vp-tag", "a path not chosen"));
      if (c.node) {
        const link = h("button", "k2nb-vp-node", `${c.node}${c.node_kind ? " · " + c.node_kind.replace("_", " ") : ""}`);
        link.title = c.node_label || "";
        link.dataset.node = c.node;
        const color = (model.get("kind_colors") || {})[c.node_kind];
        if (color) link.style.borderLeftColor = color;
        top.append(link);
      }
      card.appendChild(top);
      if (c.evidence) card.appendChild(h("div", "k2nb-vp-evidence", c.evidence));
      list.appendChild(card);
    }
    root.appendChild(list);
  }

  root.addEventListener("click", (ev) => {
    const b = ev.target.closest ? ev.target.closest(".k2nb-vp-node") : null;
    if (!b) return;
    model.set("selected_node", b.dataset.node);
    model.save_changes();
  });
  const TRAITS = ["checks", "verdict", "headline", "detail", "answer", "selected_node"];
  for (const k of TRAITS) model.on(`change:${k}`, draw);
  draw();
  return () => { for (const k of TRAITS) model.off(`change:${k}`, draw); };
}

export default { render };
