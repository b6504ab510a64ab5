// VerificationPanel view: the verdict, then one card per check (status, name, evidence, node).

const VERDICT = {
  passed: ["✓", "Verified", "every current check passed"],
  failed: ["✗", "Failed", "a check failed"],
  pending: ["…", "Pending", "checks are still running"],
  none: ["–", "No checks", "this run recorded no checks"],
};
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
    const [icon, word, why] = VERDICT[v] || VERDICT.none;
    const head = h("div", "k2nb-vp-head");
    head.appendChild(h("span", "k2nb-vp-title", model.get("title")));
    const badge = h("span", `k2nb-vp-verdict k2nb-v-${v}`);
    badge.append(h("span", "k2nb-vp-icon", icon), h("span", "", word));
    badge.title = why;
    head.appendChild(badge);
    const current = checks.filter((c) => !c.superseded);
    const passed = current.filter((c) => c.status === "passed").length;
    head.appendChild(h("span", "k2nb-vp-count", checks.length ? `${passed} of ${current.length} passed` : ""));
    root.appendChild(head);
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
      if (c.superseded) card.classList.add("superseded");
      if (c.node && c.node === sel) card.classList.add("sel");
      card.dataset.check = c.id;
      const top = h("div", "k2nb-vp-check-head");
      top.append(h("span", `k2nb-vp-status k2nb-s-${c.status}`, ICON[c.status] || "?"));
      top.append(h("span", "k2nb-vp-name", c.name));
      if (c.kind && c.kind !== c.name) top.append(h("span", "k2nb-vp-kind", c.kind));
      if (c.superseded) top.append(h("span", "k2nb-vp-tag", "superseded by a retry"));
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
  for (const k of ["checks", "verdict", "answer", "selected_node"]) model.on(`change:${k}`, draw);
  draw();
  return () => { for (const k of ["checks", "verdict", "answer", "selected_node"]) model.off(`change:${k}`, draw); };
}

export default { render };
