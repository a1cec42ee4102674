"""The report's submission section: what ensemble.submit wrote (its submit.json).
"""
from __future__ import annotations

from ensemble.page import e, section


def submission_section(submit) -> tuple:
    if submit is None:
        return section("submission", "Submission", "<p>No submission written yet (<code>ensemble/submit.json</code> "
                                                   "is missing).</p>")
    return section("submission", "Submission",
                   f"<p><code>{e(submit.get('path'))}</code>: {e(submit.get('n_images'))} images, "
                   f"{e(submit.get('n_empty'))} empty masks, {e(submit.get('mode'))}"
                   + (f" ({e(submit['combine_note'])})" if submit.get("combine_note") else "") + ", rows in "
                   f"{e(submit.get('order'))}; prediction set <code>{e(submit.get('pred'))}</code>.</p>")
