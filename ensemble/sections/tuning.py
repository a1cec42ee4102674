"""The report's tuning section: what the tuning chose and how each rule fared on folds it was not tuned on
(nested), the rules without the classifier, and the score against each tuned parameter.
"""
from __future__ import annotations

import numpy as np

from ensemble import figures
from ensemble.nested import EPS
from ensemble.page import e, figure, note, num, section, short, table
from ensemble.rules import describe
from ensemble.tuning_record import nested, tuning_final, tuning_folds, tuning_params, tuning_steps, tuning_sweeps


SWEEP_RULE = {"threshold": "threshold", "empty_threshold": "classifier", "combination": "combined",
              "min_area": "min_area"}
SWEEP_NAME = {"threshold": "mask threshold", "empty_threshold": "P(empty) threshold", "combination":
              "classifier weight w", "min_area": "minimum area"}


def params_text(p) -> str:
    """A tuning step's parameters in words."""
    if not p:
        return ""
    if "w" in p:
        w = float(p["w"])
        src = ("the classifier's P(empty)" if w == 1 else "1 &minus; the segmenter's P(salt)" if w == 0 else
               f"{w:g} &times; classifier + {1 - w:g} &times; (1 &minus; segmenter's P(salt))")
        return f"zero the mask if {src} &gt; {num(p.get('threshold'), 3)}"
    if p.get("vertical"):
        n = p.get("tiles")
        return ("a vertical mask continues into the tiles below it" +
                ("" if n is None else f" ({int(n)} tile{'' if n == 1 else 's'} out of fold)"))
    if p.get("constant_empty"):
        n = p.get("images")
        return "constant images are empty" + ("" if n is None else f" ({int(n)} image{'' if n == 1 else 's'})")
    parts = []
    for k, v in p.items():
        if k == "threshold":
            parts.append(f"mask threshold {num(v, 2)}")
        elif k == "min_area":
            parts.append(f"drop masks under {int(v)} px" if v else "keep every mask")
        else:
            parts.append(f"{e(k)} {e(short(v))}")
    return ", ".join(parts)


def gain_text(s) -> str:
    """A step's mean per-fold nested gain &plusmn; its standard error ("" where it has none)."""
    m, se = s.get("gain_mean"), s.get("gain_se")
    if m is None or se is None:
        return ""
    return f"{m:+.4f} &plusmn; {se:.4f}"


def paired_gain(a_folds, b_folds) -> tuple[float, float] | None:
    """Mean per-fold difference a - b and its standard error (as ensemble.tune decides a rule), or None."""
    a, b = np.asarray(a_folds or [], np.float64), np.asarray(b_folds or [], np.float64)
    if len(a) != len(b) or len(a) < 2 or not np.isfinite(a - b).all():
        return None
    g = a - b
    return float(g.mean()), float(g.std(ddof=1) / np.sqrt(len(g)))


def reason_text(m: float, se: float) -> str:
    """Why a rule or a rule set that scores higher nested was not chosen, in words."""
    if m <= EPS:
        return f"no gain: {m:+.4f} &plusmn; {se:.4f}"
    if m <= se:
        return f"within noise: {m:+.4f} &plusmn; {se:.4f}"
    return f"a gain above its noise, {m:+.4f} &plusmn; {se:.4f}"


def step_decision(s) -> str:
    """The "kept" cell of a tuning step: yes, skipped, or no with its reason."""
    if s.get("kept"):
        return '<span class="kept">yes</span>'
    if s.get("overall") is None:
        return '<span class="rejected">skipped</span>'
    m, se = s.get("gain_mean"), s.get("gain_se")
    why = "" if m is None or se is None else f" ({reason_text(m, se).split(':')[0]})"
    return f'<span class="rejected">no{why}</span>'


def sweep_choices(tuning) -> dict:
    """For each sweep the tuning wrote: the setting it fitted on all folds ({"x", "kept", "edge", "lo",
    "hi"}): the chosen one where the rule is kept, else the best tried. "edge": at an end of the sweep
    that could be extended (not minimum area 0, the rule off, nor w 0 or 1, each model alone)."""
    sweeps, params = tuning_sweeps(tuning), tuning_params(tuning)
    rules = tuning.get("rules")
    steps = {s.get("rule"): s for s in tuning_steps(tuning) if s.get("rule")}
    out = {}
    for key, rule in SWEEP_RULE.items():
        curve = figures.sweep_curve(sweeps, key)
        if curve is None:
            continue
        s = steps.get(rule) or {}
        p = s.get("params") or {}
        x = {"threshold": params.get("threshold"), "empty_threshold": p.get("threshold"),
             "combination": p.get("w"), "min_area": p.get("min_area")}[key]
        grid = [float(v) for v in curve[0]]
        if x is None:
            x = grid[int(np.argmax(curve[1]))]
        kept = rule == "threshold" or (rule in rules if isinstance(rules, list) else bool(s.get("kept")))
        i = int(np.argmin(np.abs(np.asarray(grid) - float(x))))
        edge = (key in ("threshold", "empty_threshold") and i in (0, len(grid) - 1)) or \
               (key == "min_area" and i == len(grid) - 1 and len(grid) > 1)
        out[key] = {"x": float(x), "kept": kept, "edge": edge, "lo": grid[0], "hi": grid[-1], "at": i}
    return out


def edge_notes(choices) -> list[str]:
    notes = []
    for key, c in choices.items():
        if not c["edge"]:
            continue
        end = "lowest" if c["at"] == 0 else "highest"
        what = "chosen" if c["kept"] else "best tried (the rule was not kept)"
        notes.append(note(f"The {SWEEP_NAME[key]} {what}, {c['x']:g}, is the {end} of its sweep "
                          f"({c['lo']:g}&ndash;{c['hi']:g}): a {'lower' if end == 'lowest' else 'higher'} one "
                          "might score better, and the sweep in <code>ensemble.tune</code> should reach past it."))
    return notes


def tuning_section(tuning) -> tuple:
    folds = tuning_folds(tuning)
    has_nested = any(nested(s) for s in tuning_steps(tuning))
    rows = []
    higher = []
    for s in tuning_steps(tuning):
        ns = nested(s) if has_nested else {"overall": s.get("overall"), "folds": s.get("folds")}
        fs = ns.get("folds") or [None] * len(folds)
        rows.append([e(s.get("name", "?"))] + [num(v) for v in fs] + [f"<b>{num(ns.get('overall'))}</b>"]
                    + ([gain_text(s), num(s.get("overall"))] if has_nested else [])
                    + [step_decision(s) if has_nested else
                       f'<span class="{"kept" if s.get("kept") else "rejected"}">'
                       f'{"yes" if s.get("kept") else ("skipped" if s.get("overall") is None else "no")}</span>',
                       params_text(s.get("params")) or e(s.get("note", ""))])
        m, se = s.get("gain_mean"), s.get("gain_se")
        if has_nested and not s.get("kept") and m is not None and se is not None and m > EPS:
            higher.append(f"<b>{e(s.get('name'))}</b> scores higher nested than the rules before it, but is not "
                          f"kept: {reason_text(m, se)}")
    final = tuning_final(tuning)
    fn = nested(final) if has_nested else final
    rows.append(["final (kept rules)"] + [num(v) for v in fn.get("folds") or [None] * len(folds)]
                + [f"<b>{num(fn.get('overall'))}</b>"] + (["", num(final.get("overall"))] if has_nested else [])
                + ["", ""])
    if has_nested:
        intro = ("<p><i>Nested</i>: each fold's score comes from rules tuned on the other folds only, so no score "
                 "is measured on the images its rules were tuned on. A rule is kept only if its mean gain over the "
                 "folds (nested, against the rules kept before it) is positive and larger than its standard error "
                 "(&plusmn;); <i>in-sample</i> is tuned and scored on all out-of-fold predictions, for comparison "
                 "(it never falls when a rule is added). Parameters are fitted on all folds; a rejected step "
                 "shows those it would have had.</p>")
        header = ["step"] + [f"fold {k}" for k in folds] + ["nested", "gain ± s.e.", "in-sample", "kept",
                                                            "parameters (fitted on all folds)"]
    else:
        intro = ("<p>This tuning predates nested tuning: each rule was kept if it raised the out-of-fold score "
                 "over the step before, tuned and scored on the same predictions. A rejected step shows the score "
                 "of its best setting tried.</p>")
        header = ["step"] + [f"fold {k}" for k in folds] + ["out-of-fold", "kept", "parameters (best tried)"]
    body = [intro, table(header, rows, total_last=True, left_last=True),
            f"<p>Chosen: <b>{e(describe(tuning_params(tuning)))}</b>.</p>"]
    if higher:
        body.append("<p>" + "; ".join(higher) + " (a rule is kept only when its mean gain exceeds its standard "
                    "error).</p>")
    body += segmenter_only_text(tuning, has_nested)
    choices = sweep_choices(tuning)
    fig = figures.curves_figure(tuning_sweeps(tuning), choices)
    if fig is not None:
        body += ["<h3>Score against each tuned parameter</h3>",
                 figure(fig, "score curves", "In-sample score (tuned and scored on all out-of-fold images) against "
                        "each swept setting, the others at their fitted values. The red dot marks the setting the "
                        "tuning fitted on all folds: filled where the rule is kept (the choice), hollow where it "
                        "is not (the best setting tried); a setting at the end of its sweep says so.", dpi=90)]
        body += edge_notes(choices)
    return section("tuning", "Ensemble tuning", body)


def segmenter_only_text(tuning, has_nested) -> list[str]:
    """The rules for a submission without the classifier, and how they compare with the chosen rules."""
    so = tuning.get("segmenter_only") or {}
    p_so = tuning.get("params_segmenter_only")
    if not p_so or not so.get("final"):
        return []
    sf, final = so["final"], tuning_final(tuning)
    score = (f"nested {num(nested(sf).get('overall'))} (in-sample {num(sf.get('overall'))})" if nested(sf)
             else f"out-of-fold {num(sf.get('overall'))}")
    same = p_so == tuning_params(tuning)
    text = f"<p>Rules for a submission without the classifier: {e(describe(p_so))}, {score}"
    g = paired_gain(nested(sf).get("folds"), nested(final).get("folds")) if has_nested else None
    if same:
        text += ": the same rules as chosen, fitted on all folds"
        if g is None or abs(g[0]) <= EPS:
            return [text + ".</p>"]
        text += (f". Their nested score differs from the chosen rules' {num(nested(final).get('overall'))} all the "
                 "same: nested, each fold's rules are fitted on the other folds, and without the classifier those "
                 "fits choose among fewer rules")
    if g is None:
        return [text + ".</p>"]
    m, se = g
    if m > EPS:
        why = ("within noise" if m <= se else "above its noise, yet not chosen: the tuning adds rules to the "
               "chosen set one at a time, each on its own gain, and never weighs whole sets against each other; "
               "these rules are worth trying")
        return [text + f". Nested, they score higher than the chosen rules, {m:+.4f} &plusmn; {se:.4f} per fold: "
                       f"{why}.</p>"]
    return [text + f"; nested, against the chosen rules, {m:+.4f} &plusmn; {se:.4f} per fold.</p>"]
