"""The report of an eval: every metric with its numerator and denominator, per-family accuracy, the
scaling curve, the expert summary, the targets, timings and the per-run records; as ``eval.json``,
a ``scaling.png`` plot and a text summary."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from k2nb.nano.eval.confusion import confusion_table
from k2nb.nano.eval.metrics import ABSTENTION, CONDITIONS, TOLERANCE, VERIFICATION_RULES, RunRecord

if TYPE_CHECKING:
    from k2nb.nano.eval.experts import RoutingTally

# Targets on the held-out set: (report field, minimum).
TARGETS = {
    "accuracy": 0.95,
    "valid_tool_call_rate": 0.995,
    "verification_rate": 0.95,
    "recovery_rate": 0.80,
}
# Per split, the minimums that differ: words the model was not built around are harder to read.
SPLIT_TARGETS = {"paraphrase": {"accuracy": 0.85}}
# (report field, maximum): a wrong answer stated with confidence is worse than no answer.
MAX_TARGETS = {"confident_wrong_rate": 0.05}
DEFINITIONS = {
    "correct": TOLERANCE,
    "valid_tool_call": "parsed without error, names a declared tool, arguments a JSON object with "
                       "a string 'code'",
    "verification": "a successful python call after an earlier successful one that (i) asserts or "
                    "outputs True/False, (ii) recomputes: other code, same output value, or (iii) "
                    "is announced as a check by the reasoning just before it",
    "recovery": "first python call failed by injection; the model called python again, got a "
                "successful result and answered correctly (over runs where the injection fired); "
                "recovered_when_solved: the same over problems the tools run answered correctly",
    "scaling": "first k of the max(paths) sampled paths, voted with the loop's verified weights",
    "abstention": f"the final answer says {ABSTENTION!r} (its opening words, any case); abstention_rate "
                  "is over answerable questions, correct_abstention_rate over questions that cannot be "
                  "answered",
    "confident_wrong": "a stated final answer that is neither correct nor an abstention (an answer to a "
                       "question that cannot be answered counts); over every tools run",
    "withheld": "the loop withheld the model's answer because its checks still failed after the "
                "rollbacks (ThinkOptions.failed_checks); neither correct nor confident wrong; "
                "withheld_correct counts the withheld answers that were right",
    "accuracy_scope": "accuracy, per-family accuracy, verification, recovery, no-tools accuracy and "
                      "scaling count answerable questions only",
    "family_confusion": "expected family -> the family the run's first python call resembles "
                        "(k2nb.nano.eval.confusion); abstained / no_call for runs without a call",
}


def _rate(num: int, den: int) -> float | None:
    return round(num / den, 6) if den else None  # 6 places: the text report rounds once, not twice


def _count(items: Iterable[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for x in items:
        out[x] = out.get(x, 0) + 1
    return out


def summarise(records: Sequence[RunRecord], tally: RoutingTally, settings: dict[str, Any],
              walls: dict[str, float], wall_s: float) -> dict[str, Any]:
    """The report (module docstring) of ``records``."""
    everything = {c: [r for r in records if r.condition == c] for c in CONDITIONS}
    # accuracy-like measures count the questions that have an answer; abstention is reported apart
    by = {c: [r for r in runs if r.answerable] for c, runs in everything.items()}
    tools = by["tools"]
    report: dict[str, Any] = {
        "settings": settings,
        "n_problems": len({r.problem for r in records}),
        "accuracy": _rate(sum(r.correct for r in tools), len(tools)),
        "accuracy_by_family": {
            fam: _rate(sum(r.correct for r in tools if r.family == fam), sum(r.family == fam for r in tools))
            for fam in dict.fromkeys(r.family for r in tools)
        },
        # which sub-families the misses come from, most first: where to look in the traces
        "misses_by_kind": {c: dict(Counter(r.kind for r in everything[c] if not r.correct).most_common())
                           for c in ("tools", "injected") if everything[c]},
        **_tool_calls(everything["tools"], tools),
        **_recovery(tools, by["injected"]),
        "accuracy_no_tools": _rate(sum(r.correct for r in by["no_tools"]), len(by["no_tools"])),
        "scaling": _scaling(by["paths"], settings),
        "end_reasons": {c: _count(r.end_reason for r in everything[c]) for c in CONDITIONS if everything[c]},
        "experts": tally.summary(),
        "wall_s": round(wall_s, 1),
        "wall_s_by_condition": {c: round(w, 1) for c, w in walls.items()},
        "definitions": dict(DEFINITIONS),
        **_answers(everything["tools"]),
        "family_confusion": confusion_table(everything["tools"]),
        "conditions_run": [c for c in CONDITIONS if everything[c]],
    }
    report["targets"] = _targets(report)
    report["runs"] = [asdict(r) for r in records]
    return report


def _answers(tools: Sequence[RunRecord]) -> dict[str, Any]:
    """Outcomes of the tools runs: correct, abstained, confident wrong, no answer; apart for the
    questions that have an answer and those that do not."""
    answerable = [r for r in tools if r.answerable]
    unanswerable = [r for r in tools if not r.answerable]

    def outcomes(runs: Sequence[RunRecord]) -> dict[str, int]:
        return {"runs": len(runs), "correct": sum(r.correct for r in runs),
                "abstained": sum(r.abstained for r in runs),
                "confident_wrong": sum(r.confident_wrong for r in runs),
                "withheld": sum(r.withheld for r in runs),
                "withheld_correct": sum(r.withheld_correct for r in runs),
                "no_answer": sum(not (r.answer or "").strip() for r in runs)}
    return {
        "n_answerable": len({r.problem for r in answerable}),
        "n_unanswerable": len({r.problem for r in unanswerable}),
        "abstention_phrase": ABSTENTION,
        "abstention_rate": _rate(sum(r.abstained for r in answerable), len(answerable)),
        "confident_wrong_rate": _rate(sum(r.confident_wrong for r in tools), len(tools)),
        "correct_abstention_rate": _rate(sum(r.abstained for r in unanswerable), len(unanswerable)),
        "withheld_rate": _rate(sum(r.withheld for r in tools), len(tools)),
        "answers": {"answerable": outcomes(answerable), "unanswerable": outcomes(unanswerable)},
    }


def _tool_calls(every: Sequence[RunRecord], tools: Sequence[RunRecord]) -> dict[str, Any]:
    """Tool calls over every tools run (``every``); verification over the answerable ones (``tools``):
    a question without an answer has nothing to verify."""
    n_calls = sum(r.tool_calls for r in every)
    n_valid = sum(r.valid_tool_calls for r in every)
    all_valid = sum(r.valid_tool_calls == r.tool_calls for r in every)
    return {
        "valid_tool_call_rate": _rate(n_valid, n_calls),
        # one runaway run can emit dozens of broken calls, so say how many runs had only valid ones
        "tool_calls": {"total": n_calls, "valid": n_valid,
                       "per_run": round(n_calls / len(every), 3) if every else None,
                       "runs_all_valid": _rate(all_valid, len(every))},
        "verification_rate": _rate(sum(r.verification is not None for r in tools), len(tools)),
        "verification_rules": {rule: sum(r.verification == rule for r in tools)
                               for rule in VERIFICATION_RULES},
    }


def _recovery(tools: Sequence[RunRecord], injected: Sequence[RunRecord]) -> dict[str, Any]:
    n_injected = sum(r.injected for r in injected)
    solved = {r.problem for r in tools if r.correct}
    hit_solved = [r for r in injected if r.injected and r.problem in solved]
    return {
        "recovery_rate": _rate(sum(r.recovered for r in injected), n_injected),
        "recovery": {"runs": len(injected), "injected": n_injected,
                     "retried": sum(r.retried for r in injected),
                     "recovered": sum(r.recovered for r in injected),
                     "accuracy": _rate(sum(r.correct for r in injected), len(injected)),
                     # recovery is capped by accuracy; this separates "cannot recover" from "cannot solve"
                     "recovered_when_solved": _rate(sum(r.recovered for r in hit_solved), len(hit_solved))},
    }


def _scaling(multi: Sequence[RunRecord], settings: dict[str, Any]) -> dict[str, Any]:
    ks = settings["paths"]
    return {
        "temperature": settings["scaling_temperature"],
        "paths": ks,
        "accuracy": [_rate(sum(r.vote_correct.get(k, False) for r in multi), len(multi)) for k in ks],
        "pass_at_k": [_rate(sum(any(r.path_correct[:k]) for r in multi), len(multi)) for k in ks],
        "mean_path_accuracy": _rate(sum(sum(r.path_correct) for r in multi),
                                    sum(len(r.path_correct) for r in multi)),
    }


def _targets(report: dict[str, Any]) -> dict[str, Any]:
    goals = {**TARGETS, **SPLIT_TARGETS.get(report["settings"].get("split", "heldout"), {})}
    if "injected" not in report["conditions_run"]:
        goals.pop("recovery_rate")  # not measured (e.g. --conditions tools)
    targets = {
        name: {"target": goal, "value": report[name],
               "met": report[name] is not None and report[name] >= goal}
        for name, goal in goals.items()
    }
    for name, most in MAX_TARGETS.items():
        targets[name] = {"target": most, "value": report[name], "at_most": True,
                         "met": report[name] is not None and report[name] <= most}
    acc, ks = report["scaling"]["accuracy"], report["scaling"]["paths"]
    if len(acc) >= 2 and acc[0] is not None and acc[-1] is not None:
        targets["voting_beats_one_path"] = {"target": f"accuracy@{ks[-1]} > accuracy@{ks[0]}",
                                            "value": [acc[0], acc[-1]], "met": acc[-1] > acc[0]}
    return targets


def plot_scaling(report: dict[str, Any], path: Path) -> Path:
    """The test-time-scaling curve: voted accuracy and pass@k vs paths, greedy and no-tools lines."""
    from matplotlib.figure import Figure  # no pyplot: no global state, no display needed

    s = report["scaling"]
    ks = s["paths"]
    fig = Figure(figsize=(6, 4), dpi=120)
    ax = fig.add_subplot()
    ax.plot(ks, [a if a is not None else float("nan") for a in s["accuracy"]], "o-", label="voted answer")
    ax.plot(ks, [a if a is not None else float("nan") for a in s["pass_at_k"]], "s--", alpha=0.7,
            label="any path correct (pass@k)")
    if report.get("accuracy") is not None:
        ax.axhline(report["accuracy"], color="green", ls=":",
                   label=f"greedy, 1 path ({report['accuracy']:.0%})")
    if report.get("accuracy_no_tools") is not None:
        ax.axhline(report["accuracy_no_tools"], color="gray", ls=":",
                   label=f"no tools ({report['accuracy_no_tools']:.0%})")
    ax.set_xscale("log", base=2)
    ax.set_xticks(ks, [str(k) for k in ks])
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel(f"reasoning paths (temperature {s['temperature']:g}, verified voting)")
    ax.set_ylabel(f"{split_words(report)} accuracy")
    ax.set_title(f"k2-nano test-time scaling ({report['n_problems']} {split_words(report)} problems)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    fig.savefig(path)
    return path


def split_words(report: dict[str, Any]) -> str:
    """How the report's problem set is named in its text and plot."""
    split = report["settings"].get("split", "heldout")
    return {"heldout": "held-out", "paraphrase": "hand-written paraphrase"}.get(split, "training-phrasing")


def has_scaling(report: dict[str, Any]) -> bool:
    """Whether the sampled multi-path runs ran (not under ``--no-scaling``)."""
    return any(a is not None for a in report["scaling"]["accuracy"])


def write_report(report: dict[str, Any], out: Path) -> dict[str, Path]:
    """``eval.json`` and, when the multi-path runs ran, ``scaling.png``; returns their paths."""
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "eval.json"}
    if has_scaling(report):
        paths["png"] = plot_scaling(report, out / "scaling.png")
    report["files"] = {k: str(v) for k, v in paths.items()}
    paths["json"].write_text(json.dumps(report, indent=2, default=str) + "\n")
    return paths


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.1%}"


def format_report(report: dict[str, Any]) -> str:
    """The text summary ``k2nb eval`` prints."""
    return "\n".join([*_metric_lines(report), *_expert_lines(report), *_closing_lines(report)])


def _metric_lines(report: dict[str, Any]) -> list[str]:
    rec, tc, s = report["recovery"], report["tool_calls"], report["scaling"]
    ran = set(report.get("conditions_run", CONDITIONS))  # reports written before it had every condition
    lines = [
        f"k2nb eval: {report['n_problems']} {split_words(report)} problems, "
        f"model {report['settings']['model']}"
        + "".join(f", tool {n} declared beside python" for n in report["settings"].get("extra_tools", [])),
        f"  accuracy (greedy, python tool)   {_pct(report['accuracy'])}   "
        f"[{report['definitions']['correct']}]",
        *_answer_lines(report),
        f"  valid tool calls                 {_pct(report['valid_tool_call_rate'])}   "
        f"({tc['valid']}/{tc['total']}, {tc['per_run']} per run; "
        f"{_pct(tc['runs_all_valid'])} of runs all valid)",
        f"  runs with a verification step    {_pct(report['verification_rate'])}   "
        + ", ".join(f"{k} {v}" for k, v in report["verification_rules"].items()),
    ]
    if "injected" in ran:
        lines.append(f"  recovery after injected failure  {_pct(report['recovery_rate'])}   "
                     f"({rec['recovered']}/{rec['injected']} injected, {rec['retried']} retried; "
                     f"accuracy {_pct(rec['accuracy'])}; "
                     f"{_pct(rec['recovered_when_solved'])} of solved problems)")
    if "no_tools" in ran:
        lines.append(f"  accuracy without tools           {_pct(report['accuracy_no_tools'])}")
    if "paths" in ran:
        lines.append(f"  paths (T={s['temperature']:g}, voted)              "
                     + "  ".join(f"{k}: {_pct(a)}" for k, a in zip(s["paths"], s["accuracy"], strict=True))
                     + "   pass@k " + "  ".join(_pct(a) for a in s["pass_at_k"]))
    return [
        *lines,
        "  by family                        "
        + "  ".join(f"{f} {_pct(a)}" for f, a in report["accuracy_by_family"].items()),
        "  misses (tools) by kind           " + _top(report["misses_by_kind"].get("tools", {})),
        *_confusion_lines(report),
        "  load balance max/mean            "
        + "  ".join(f"L{b['layer']} {b['max_over_mean']}" for b in report["experts"]["load_balance"]),
    ]


def _top(counts: dict[str, int], n: int = 12) -> str:
    """The first ``n`` of ``counts`` (most first), then how many more; eval.json has them all."""
    shown = "  ".join(f"{k} {v}" for k, v in list(counts.items())[:n]) or "none"
    rest = len(counts) - n
    return shown + (f"  … {rest} more kinds in eval.json" if rest > 0 else "")


def _answer_lines(report: dict[str, Any]) -> list[str]:
    if "answers" not in report:
        return []
    a, u = report["answers"]["answerable"], report["answers"]["unanswerable"]
    lines = [
        f"  confident wrong answers          {_pct(report['confident_wrong_rate'])}   "
        f"({a['confident_wrong'] + u['confident_wrong']}/{a['runs'] + u['runs']} runs; "
        f"{a['confident_wrong']} answerable, {u['confident_wrong']} unanswerable)",
        f"  abstentions (answerable)         {_pct(report['abstention_rate'])}   "
        f"({a['abstained']}/{a['runs']}; {a['no_answer']} ended without an answer)",
    ]
    if u["runs"]:
        lines.append(f"  abstentions (unanswerable)       {_pct(report['correct_abstention_rate'])}   "
                     f"({u['abstained']}/{u['runs']}; the right answer there)")
    if report.get("withheld_rate") is not None:
        lines.append(f"  withheld (checks failed)         {_pct(report['withheld_rate'])}   "
                     f"({a['withheld'] + u['withheld']}/{a['runs'] + u['runs']} runs; "
                     f"{a['withheld_correct']} of the {a['withheld']} answerable ones were right)")
    return lines


def _confusion_lines(report: dict[str, Any]) -> list[str]:
    """Expected family: the families its runs looked like, off-diagonal ones named."""
    table = report.get("family_confusion", {})
    if not table:
        return []
    lines = ["  family confusion (expected: runs that looked like another family)"]
    for fam, row in table.items():
        total = sum(row.values())
        # a question without an answer is right when it abstains: that is its diagonal
        right, words = ("abstained", "abstained") if fam == "unanswerable" else (fam, f"as {fam}")
        others = ", ".join(f"{k} {n}" for k, n in row.items() if k != right)
        lines.append(f"    {fam:<13} {row.get(right, 0)}/{total} {words}" + (f"; {others}" if others else ""))
    return lines


def _expert_lines(report: dict[str, Any]) -> list[str]:
    lines = []
    for cls, info in report["experts"]["classes"].items():
        # e.g. "L1 e5 31% (3.4×)": expert 5 takes 31 % of the class's layer-1 picks, 3.4× its overall rate
        tops = "; ".join(f"L{lay['layer']} " + ", ".join(f"e{t['expert']} {t['share']:.0%} ({t['lift']:g}×)"
                                                        for t in lay["top"][:2]) for lay in info["layers"])
        lines.append(f"  experts for {cls:<12} {info['tokens']:>5} tok  {tops}")
    return lines


def _closing_lines(report: dict[str, Any]) -> list[str]:
    lines = []
    for name, t in report["targets"].items():
        met = "met" if t["met"] else "NOT met"
        bound = "at most " if t.get("at_most") else ""
        lines.append(f"  target {name:<22} {met} ({t['value']} vs {bound}{t['target']})")
    lines.append(f"  wall time {report['wall_s']:.0f} s ("
                 + ", ".join(f"{c} {w:.0f} s" for c, w in report["wall_s_by_condition"].items()) + ")")
    if "files" in report:
        lines.append("  wrote " + " and ".join(report["files"].values())
                     + ("" if "png" in report["files"] else " (no scaling plot: no paths runs, "
                                                              "--no-scaling or --conditions)"))
    return lines
