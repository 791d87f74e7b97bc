"""Speaker-independent metrics: unweighted accuracy (mean per-class recall),
macro-F1, per-class recall and the confusion matrix."""

from __future__ import annotations

import numpy as np


def confusion(y_true, y_pred, n_classes: int) -> np.ndarray:
    """Rows are true classes, columns predictions; a prediction of -1 (no
    window in the clip) counts in no column but still in its row's total."""
    m = np.zeros((n_classes, n_classes + 1), dtype=int)
    for t, p in zip(y_true, y_pred):
        m[t, p if p >= 0 else n_classes] += 1
    return m


def scores(y_true, y_pred, names) -> dict:
    n = len(names)
    m = confusion(y_true, y_pred, n)
    support = m.sum(axis=1)
    tp = np.diag(m[:, :n]).astype(float)
    recall = np.divide(tp, support, out=np.zeros(n), where=support > 0)
    predicted = m[:, :n].sum(axis=0)
    precision = np.divide(tp, predicted, out=np.zeros(n), where=predicted > 0)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros(n), where=(precision + recall) > 0)
    return {
        "n": int(support.sum()),
        "ua": float(recall.mean()),
        "wa": float(tp.sum() / max(1, support.sum())),
        "macro_f1": float(f1.mean()),
        "recall": {name: float(r) for name, r in zip(names, recall)},
        "confusion": m[:, :n].tolist(),
        "no_window": int(m[:, n].sum()),
    }


def ua_by_group(y_true, y_pred, groups, names) -> dict:
    """UA within each group (a speaker): mean recall over the classes the group
    has clips of.  Three test speakers make one UA; their spread says how far
    one new voice can be from it."""
    y_true, y_pred, groups = np.asarray(y_true), np.asarray(y_pred), np.asarray(groups)
    out = {}
    for g in sorted(set(groups.tolist())):
        sel = groups == g
        recall = scores(y_true[sel], y_pred[sel], names)["recall"]
        present = set(y_true[sel].tolist())
        out[str(g)] = float(np.mean([r for k, r in enumerate(recall.values()) if k in present]))
    return out


def clip_predictions(probs: np.ndarray, clip_of_window: np.ndarray, n_clips: int) -> np.ndarray:
    """A clip's label is the argmax of its windows' mean probabilities (-1: no window)."""
    out = np.full(n_clips, -1)
    for c in range(n_clips):
        sel = clip_of_window == c
        if sel.any():
            out[c] = int(np.argmax(probs[sel].mean(axis=0)))
    return out
