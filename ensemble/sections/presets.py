"""The report's presets section: each model's preset as its run.json recorded it.
"""
from __future__ import annotations

from ensemble.page import e, note, section, short, table
from ensemble.sections.models import init_cell


def preset_rows(run: dict, encoder_random: bool) -> list[list[str]]:
    """A run.json's preset config as rows: one per setting, one per round or stage (a frozen-encoder stage
    is marked skipped when the encoder started random, as the classifier skips it then); ImageNet weights
    asked for but not found are marked on their row."""
    conf = run.get("config") or {}
    rows = []
    for k, v in conf.items():
        if isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
            for i, item in enumerate(v, 1):
                label = item.get("name") or f"{k.rstrip('s')} {i}"
                text = e(", ".join(f"{a} {short(b)}" for a, b in item.items() if a != "name"))
                if item.get("frozen") and encoder_random:
                    text += " <i>(skipped: the encoder started random)</i>"
                rows.append([e(label), text])
        elif k == "encoder_weights" and encoder_random and str(v) == "imagenet":
            rows.append([e(k), f'{e(short(v))} <span class="random">asked for, not found: the encoder started '
                               "random</span>"])
        else:
            rows.append([e(k), e(short(v))])
    return rows


def presets_section(seg_run, clf_run, seg, clf) -> tuple:
    blocks = []
    for name, run, m in (("segmenter", seg_run, seg), ("classifier", clf_run, clf)):
        if m is None and not run:
            continue
        preset = (m or {}).get("preset") or run.get("preset") or "?"
        random = str((m or run).get("encoder_init")) == "random"
        inner = (table(["setting", "value"], preset_rows(run, random), left=1, left_last=True) if run.get("config")
                 else note(f"no run.json with the preset's settings in {e(name)}/"))
        asked = str((run.get("config") or {}).get("encoder_weights")) == "imagenet"
        if random and asked:
            inner += note(f"The {e(name)} preset asks for ImageNet weights, but none were found when it trained "
                          "(offline, or not installed): its encoder started from random weights, and its scores "
                          "are those of a network trained from scratch.")
        blocks.append(f"<div><h3>{e(name)}: preset <code>{e(preset)}</code></h3>{inner}"
                      f"<p>{init_cell(m or run)}</p></div>")
    return section("presets", "Presets", ['<div class="side">' + "".join(blocks) + "</div>"])
