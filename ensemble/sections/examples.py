"""The report's examples section: the worst and best images of each coverage class and the worst false
positives, drawn large (truth filled, prediction outlined).
"""
from __future__ import annotations

from ensemble import coverage as cov
from ensemble import figures
from ensemble.page import e, figure, note, section


N_WORST = 4        # worst images shown per coverage class
N_FALSE_POS = 5    # worst false positives on empty images shown


def _titles(d, pred, scores) -> dict:
    truth = d["truth"]
    c, ious = cov.coverage(truth), cov.iou(truth, pred)
    pc = cov.coverage(pred)
    return {i: f"{d['ids'][i][:10]}  score {scores[i]:.2f}\ntruth {100 * c[i]:.1f}%  pred {100 * pc[i]:.1f}%  "
               f"IoU {ious[i]:.2f}" for i in range(len(truth))}


def examples_section(d, pred, scores) -> tuple:
    truth, images = d["truth"], d["images"]
    titles = _titles(d, pred, scores)
    legend = ("Truth <b style='color:%s'>filled blue</b>, prediction <b style='color:%s'>outlined red</b> "
              "(final rules). Each tile: image id, its score, the share of the image that is salt in the truth "
              "and in the prediction, and their IoU." % (figures.TRUTH_COLOR, figures.PRED_COLOR))
    worst = cov.worst_by_class(truth, pred, scores, N_WORST)
    rows = [(cov.CLASS_NAMES[c], idx) for c, idx in worst.items() if len(idx)]
    absent = [cov.CLASS_NAMES[c] for c, idx in worst.items() if not len(idx)]
    body = [f"<p>{legend}</p>", "<h3>Worst images with salt, by coverage class</h3>"]
    body.append(figures_or_note(images, truth, pred, rows, titles, N_WORST, "worst images with salt by coverage class",
                                "The lowest-scoring images of each class (lowest IoU first among equal scores)."
                                + (f" No image in the class{'es' if len(absent) > 1 else ''} {e(', '.join(absent))}."
                                   if absent else "")))
    shown_worst = [int(i) for idx in worst.values() for i in idx]
    best = cov.best_by_class(truth, pred, scores, 1, exclude=shown_worst)
    best_idx = [int(idx[0]) for idx in best.values() if len(idx)]
    all_worst = [cov.CLASS_NAMES[c] for c, idx in best.items() if not len(idx) and len(worst[c])]
    zero = [cov.CLASS_NAMES[c] for c, idx in best.items() if len(idx) and scores[int(idx[0])] == 0]
    body.append("<h3>Best images with salt, one per coverage class</h3>")
    best_titles = {**titles, **{int(idx[0]): f"{cov.CLASS_NAMES[c]}: {titles[int(idx[0])]}"
                                for c, idx in best.items() if len(idx)}}
    caption = ("The best image of each salt class, from the smallest salt class (left) to the largest, among the "
               "images not shown as the worst above."
               + (f" Every image of {e(', '.join(all_worst))} is among the worst shown: no best to show there."
                  if all_worst else ""))
    body.append(figures_or_note(images, truth, pred, [("", best_idx)], best_titles,
                                max(len(best_idx), 1), "best images with salt", caption))
    if zero:
        body.append(note(f"The best image of {e(', '.join(zero))} scores 0: the segmenter finds none of that class."))
    fp = cov.worst_false_positives(truth, pred, N_FALSE_POS)
    body.append("<h3>Worst false positives on empty images</h3>")
    body.append(figures_or_note(images, truth, pred, [("", list(fp))], titles, N_FALSE_POS,
                                "worst false positives on empty images",
                                "Empty images (no salt in the truth) with the largest predicted salt area; each "
                                "scores 0.") if len(fp) else "<p>No empty image got a false positive.</p>")
    return section("examples", "Examples", body)


def figures_or_note(images, truth, pred, rows, titles, ncols, alt, caption) -> str:
    if not any(len(idx) for _, idx in rows):
        return "<p>No image to show.</p>"
    return figure(figures.tiles_figure(images, truth, pred, rows, titles, ncols), alt, caption, dpi=100)
