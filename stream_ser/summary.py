"""A session's summary from its events: one pure function, :func:`summarise`.

The per-call report (``stream-ser report``) and the row of ``calls.parquet``
(``stream-ser batch``) both come from here, so the two always agree.  It reads
event dicts (as in a JSONL file), not live objects, and keeps no state.

(A stand-in until the dashboard's ``SessionState`` reducer lands: the two
should become one.)
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Iterable

from .session import percentiles

# Emotions counted as negative for the longest negative run.  Surprise can be
# either and is left out, as in the arousal split of labels.py.
NEGATIVE = frozenset({"angry", "disgust", "fearful", "sad"})


def _negative_run(emotions: list[dict]) -> float:
    """Longest stretch (seconds) covered by consecutive negative windows that
    overlap or touch; silence between two windows breaks a run."""
    best, run_start, run_end = 0.0, None, None
    for e in sorted(emotions, key=lambda e: e["start"]):
        if e["label"] in NEGATIVE and run_end is not None and e["start"] <= run_end:
            run_end = max(run_end, e["end"])
        elif e["label"] in NEGATIVE:
            run_start, run_end = e["start"], e["end"]
        else:
            run_start = run_end = None
        if run_end is not None:
            best = max(best, run_end - run_start)
    return best


def _round(x: float | None, n: int = 4) -> float | None:
    return None if x is None else round(float(x), n)


def summarise(events: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Totals of one session from its event dicts (any order of types; each
    type in emission order).  Keys:

    ``source``, ``duration_s`` (audio captured; the last window may be padded
    past it), ``speech_s`` (VAD), ``windows``, ``shares`` ({label: share of
    windows}), ``dominant`` (most frequent label, None without windows),
    ``arousal_mean``/``arousal_peak`` (of the windows' arousal, None if the
    model gives none), ``negative_run_s``, ``words``, ``spans`` (final
    transcript spans), ``latency_ms`` ({stage: {p50, p95, max}}), ``health``
    (overflows, dropped samples/windows, skipped transcript audio, clipped
    samples, warnings seen), ``wall_s`` (first to last emission), ``events``
    ({type: count}).
    """
    events = list(events)
    emotions = [e for e in events if e.get("type") == "emotion"]
    finals = [e for e in events if e.get("type") == "transcript" and e.get("final") and e.get("text")]
    statuses = [e for e in events if e.get("type") == "status"]
    # the status clock counts the samples captured; without one, the furthest event end
    duration = statuses[-1]["end"] if statuses else max((e["end"] for e in events), default=0.0)

    speech, onset = 0.0, None
    for e in events:
        if e.get("type") != "speech":
            continue
        if e["state"] == "start":
            onset = e["start"]
        elif onset is not None:
            speech += max(0.0, e["start"] - onset)
            onset = None
    if onset is not None:  # the recording ended mid-utterance
        speech += max(0.0, duration - onset)

    counts = Counter(e["label"] for e in emotions)
    arousal = [e["arousal"] for e in emotions if e.get("arousal") is not None]
    latency = {}
    for stage, evs in (("emotion", emotions), ("transcript", finals)):
        if evs:
            latency[stage] = {k: round(v, 1) for k, v in percentiles([e["latency_ms"] for e in evs]).items()}
    last = statuses[-1] if statuses else {}
    warnings: list[str] = []
    for s in statuses:
        for w in s.get("warnings") or []:
            if w not in warnings:
                warnings.append(w)
    walls = [e["emitted_at"] for e in events if "emitted_at" in e]
    return {
        "source": last.get("source", ""),
        "duration_s": round(duration, 3),
        "speech_s": round(speech, 3),
        "windows": len(emotions),
        "shares": {k: round(n / len(emotions), 4) for k, n in counts.most_common()},
        "dominant": counts.most_common(1)[0][0] if counts else None,
        "arousal_mean": _round(sum(arousal) / len(arousal)) if arousal else None,
        "arousal_peak": _round(max(arousal)) if arousal else None,
        "negative_run_s": round(_negative_run(emotions), 3),
        "words": sum(len(e["text"].split()) for e in finals),
        "spans": len(finals),
        "latency_ms": latency,
        "health": {
            "overflows": last.get("overflows", 0),
            "dropped_samples": last.get("dropped_samples", 0),
            "dropped_windows": last.get("dropped_windows", 0),
            "skipped_audio_s": last.get("skipped_audio_s", 0.0),
            "clipped_samples": sum(s.get("clipped_samples", 0) for s in statuses),
            "warnings": warnings,
        },
        "wall_s": round(max(walls) - min(walls), 3) if walls else 0.0,
        "events": dict(Counter(e.get("type") for e in events)),
    }
