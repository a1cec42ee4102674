"""The report's training section: per fold and stage, the training loss and validation score per epoch
(ensemble.training_logs), against epochs and minutes, and a table with each stage's reading.
"""
from __future__ import annotations

from pathlib import Path

from ensemble import figures, training_logs
from ensemble.page import e, figure, minutes, note, num, section, table
from salt.layout import Out


def training_section(out: Path, models) -> tuple:
    body = ["<p>Per fold, each stage's training loss and validation score per epoch, read from its "
            "<code>log.csv</code>. Stages (rounds) are shaded and named; each stage keeps the checkpoint of its "
            "best validated epoch (circled), the next stage starts from it, and the last stage's best (star) is "
            "the fold's model. These validation scores are measured during training, on one checkpoint without "
            "test-time flips, so they differ a little from the out-of-fold scores of the other sections. The "
            "reading of a stage uses the epochs that were validated only: a best at the last of several says "
            "more epochs may pay, a score that falls after its best says the stage over-trains (or is noisy), "
            "and one validated epoch shows no trend at all.</p>"]
    for model in models:
        spec = training_logs.SPECS[model]
        stages = training_logs.load_stages(out, model)
        body.append(f"<h3>{model.capitalize()}</h3>")
        if not stages:
            body.append(note(f"no training stages found under <code>{e(Out(out).model(model).dir)}</code>"))
            continue
        logged = [st for st in stages if st.log is not None]
        untimed = [st for st in logged if st.seconds() is None]
        show_minutes = len(untimed) < len(logged)
        if logged:
            what = ("against epochs (top) and against minutes of training (bottom left)" if show_minutes else
                    "against epochs (top)")
            body.append(figure(figures.training_figure(stages, model, show_minutes), f"{model} training curves",
                               f"{e(model.capitalize())}: loss and {e(spec.score_label)} {what}, every fold in its "
                               "colour; bottom right, the folds side by side.", dpi=100))
        if not logged:
            body.append(note("No log.csv could be read for this model."))
        elif not show_minutes:
            body.append(note("These logs have no <code>epoch_s</code> column (a run from before it was logged), so "
                             "the score is shown against epochs only, not against minutes of training."))
        elif untimed:
            body.append(note("Not on the time axis, as their log.csv has no complete <code>epoch_s</code> column "
                             "(nor the later stages of their fold): "
                             + ", ".join(f"fold {st.fold} {e(st.name)}" for st in untimed) + "."))
        if training_logs.one_validation_per_stage(stages):
            body.append(note(f"Each stage of the {model} was validated at one epoch only (the preset's "
                             "<code>validate_every</code>): its best epoch is that one by construction, and the "
                             "logs say nothing about whether more epochs would pay."))
        body.append(stage_table(stages, spec))
        problems = [f"fold {st.fold} {e(st.name)} (<code>{e(st.path)}</code>): {e('; '.join(st.notes))}"
                    for st in stages if st.notes]
        if problems:
            body.append(note("Logs missing or incomplete:<br>" + "<br>".join(problems)))
    return section("training", "How training went", body)


def stage_table(stages, spec) -> str:
    rows = []
    for st in stages:
        v, s = st.column(spec.monitor), st.column(spec.score)
        b = st.best()
        sec = st.seconds()
        if st.log is None:
            rows.append([str(st.fold), e(st.name), e(st.detail), "&ndash;", "&ndash;", "&ndash;", "&ndash;"]
                        + (["&ndash;"] if spec.score != spec.monitor else []) + ["&ndash;", e("; ".join(st.notes))])
            continue
        seen = training_logs.validated(st)
        last = None if v is None or not len(seen) else v[seen[-1]]
        row = [str(st.fold), e(st.name), e(st.detail), str(st.epochs), "&ndash;" if b is None else str(b + 1),
               num(None if b is None else v[b]), num(last)]
        if spec.score != spec.monitor:
            row.append(num(None if b is None or s is None else s[b]))
        row += [minutes(None if sec is None else sec.sum()), e(training_logs.verdict(st))]
        rows.append(row)
    header = ["fold", "stage", "settings", "epochs", "best epoch", f"best {spec.monitor}",
              f"last validated {spec.monitor}"]
    if spec.score != spec.monitor:
        header.append(f"{spec.score} at best (in training)")
    return table(header + ["time", "reading"], rows, left=3, left_last=True)
