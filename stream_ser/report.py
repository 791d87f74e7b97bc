"""A report of one session from its events: an HTML page and a PNG timeline.

``stream-ser report events.jsonl`` and ``stream-ser batch`` (one page per
call) both render through :func:`render_html`.  The charts are drawn by
plotly.js (offline, from the ``plotly`` package; nothing is fetched when the
page is viewed): a stand-alone report inlines the library (~4.8 MB, one file
to mail around), a batch writes it once beside its pages and every page loads
that copy, so 10,000 calls do not carry 10,000 copies.  The PNG for slides is
matplotlib's.  Everything here is pure: event dicts in, text or a file out.
"""

from __future__ import annotations

import html
import json
import math
import os
from typing import Any

from .errors import UsageError
from .events import EVENT_TYPES
from .labels import EMOTIONS, emotion_look
from .session import summarise

PLOTLY_JS = "plotly.min.js"  # the name a batch gives its one copy of plotly.js


def load_events(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Event dicts of a JSONL file.  A last line cut short (the writer was
    killed) is dropped; any other line that is not an event is a UsageError."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError as e:
        raise UsageError(f"cannot read {path}: {e.strerror or e}") from None
    except UnicodeDecodeError:
        raise UsageError(f"{path}: not a JSONL file of events") from None
    events = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            ev = json.loads(line)
        except json.JSONDecodeError:
            if n == len(lines):
                break
            raise UsageError(f"{path}: line {n} is not JSON") from None
        if not (isinstance(ev, dict) and ev.get("type") in EVENT_TYPES
                and all(isinstance(ev.get(k), (int, float)) and not isinstance(ev.get(k), bool) for k in ("start", "end"))):
            raise UsageError(f"{path}: line {n} is not a stream-ser event")
        events.append(ev)
    return events


def colour(label: str) -> str:
    """The label's dashboard background colour as #rrggbb."""
    from rich.color import Color

    return Color.parse(emotion_look(label)[1]).get_truecolor().hex


def _labels(emotions: list[dict]) -> list[str]:
    seen = list(emotions[0]["probs"]) if emotions else []
    return [k for k in EMOTIONS if k in seen] + [k for k in seen if k not in EMOTIONS]


def _clock(seconds: float) -> str:
    s = int(max(0.0, seconds))
    h, s = divmod(s, 3600)
    return f"{h}:{s // 60:02d}:{s % 60:02d}" if h else f"{s // 60}:{s % 60:02d}"


def _series(emotions: list[dict], labels: list[str]):
    """Window centres and their probabilities, with zeros inserted across a
    silence between windows so that the stacked areas drop there instead of
    bridging the gap; arousal gets a break (None) there."""
    xs, probs, arousal = [], {k: [] for k in labels}, []
    last_end = None
    for e in sorted(emotions, key=lambda e: e["start"]):
        if last_end is not None and e["start"] > last_end:
            for x in (last_end, e["start"]):
                xs.append(x)
                for k in labels:
                    probs[k].append(0.0)
                arousal.append(None)
        xs.append(round((e["start"] + e["end"]) / 2, 3))
        for k in labels:
            probs[k].append(e["probs"].get(k, 0.0))
        arousal.append(e.get("arousal"))
        last_end = e["end"] if last_end is None else max(last_end, e["end"])
    return xs, probs, arousal


def _hop(emotions: list[dict]) -> float:
    starts = sorted(e["start"] for e in emotions)
    steps = sorted(b - a for a, b in zip(starts, starts[1:]) if b > a)
    return min(steps[len(steps) // 2], 2.5) if steps else 1.0


def figure(events: list[dict]) -> dict:
    """The timeline as a plotly figure dict: stacked class probabilities, the
    label strip (one bar per window, one hop wide, at its centre) and arousal,
    on one time axis."""
    emotions = [e for e in events if e.get("type") == "emotion"]
    labels = _labels(emotions)
    xs, probs, arousal = _series(emotions, labels)
    hop = _hop(emotions)
    data: list[dict] = []
    for k in labels:
        c = colour(k)
        data.append({"type": "scatter", "x": xs, "y": probs[k], "name": k, "legendgroup": k, "stackgroup": "p",
                     "mode": "lines", "line": {"width": 0.5, "color": c}, "fillcolor": c,
                     "hovertemplate": f"{k} %{{y:.2f}} at %{{x:.1f}} s<extra></extra>"})
    for k in labels:
        mine = [e for e in emotions if e["label"] == k]
        if mine:
            data.append({"type": "bar", "x": [round((e["start"] + e["end"]) / 2, 3) for e in mine], "y": [1] * len(mine),
                         "width": hop, "marker": {"color": colour(k), "line": {"width": 0}}, "name": k, "legendgroup": k,
                         "showlegend": False, "xaxis": "x2", "yaxis": "y2",
                         "customdata": [e["confidence"] for e in mine],
                         "hovertemplate": f"{k} %{{customdata:.2f}} at %{{x:.1f}} s<extra></extra>"})
    data.append({"type": "scatter", "x": xs, "y": arousal, "name": "arousal", "mode": "lines", "connectgaps": False,
                 "line": {"color": "#444", "width": 1.5}, "xaxis": "x3", "yaxis": "y3", "showlegend": False,
                 "hovertemplate": "arousal %{y:.2f} at %{x:.1f} s<extra></extra>"})
    end = max((e["end"] for e in events), default=1.0)
    layout = {
        "height": 460, "margin": {"l": 60, "r": 20, "t": 10, "b": 40}, "bargap": 0, "hovermode": "closest",
        "legend": {"orientation": "h", "y": 1.0, "yanchor": "bottom", "x": 0},
        "xaxis": {"anchor": "y", "matches": "x3", "showticklabels": False, "range": [0, end]},
        "xaxis2": {"anchor": "y2", "matches": "x3", "showticklabels": False},
        "xaxis3": {"anchor": "y3", "title": {"text": "audio time (s)"}, "range": [0, end]},
        "yaxis": {"domain": [0.44, 0.92], "range": [0, 1], "title": {"text": "probability"}},
        "yaxis2": {"domain": [0.35, 0.41], "range": [0, 1], "showticklabels": False, "title": {"text": "label"}},
        "yaxis3": {"domain": [0, 0.30], "range": [0, 1], "title": {"text": "arousal"}},
    }
    return {"data": data, "layout": layout}


_STYLE = """
body{font:15px/1.45 system-ui,sans-serif;margin:1.5em auto;max-width:1100px;padding:0 1em;color:#222}
h1{font-size:1.4em;margin:.2em 0} h2{font-size:1.1em;margin:1.4em 0 .4em}
.error{background:#fde8e8;border-left:4px solid #c62828;padding:.5em .8em}
table{border-collapse:collapse} td,th{padding:.15em .8em .15em 0;text-align:left;vertical-align:top}
.num{text-align:right;font-variant-numeric:tabular-nums}
.chip{display:inline-block;width:.9em;height:.9em;border-radius:2px;margin-right:.3em;vertical-align:-.1em}
.legend span.item{margin-right:1.2em;white-space:nowrap}
ol.transcript{list-style:none;padding:0} ol.transcript li{border-left:6px solid #ccc;padding:.2em .6em;margin:.25em 0}
.t{color:#666;font-variant-numeric:tabular-nums;margin-right:.6em} .tag{font-size:.85em;color:#444;margin-right:.6em}
"""


def _rows(pairs) -> str:
    return "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>" for k, v in pairs)


def _fmt(x, unit: str = "", digits: int = 2) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}{unit}"


def render_html(events: list[dict], title: str, *, plotly_js: str | bool = True, error: str | None = None,
                summary: dict | None = None) -> str:
    """The report page.  ``plotly_js`` True inlines plotly.js (a page that
    stands alone); a file name (e.g. :data:`PLOTLY_JS`) loads that file from
    beside the page.  ``error`` is shown at the top (a recording that failed)."""
    import plotly.io as pio

    s = summary or summarise(events)
    emotions = [e for e in events if e.get("type") == "emotion"]
    labels = _labels(emotions) or list(EMOTIONS)
    legend = "".join(f'<span class="item"><span class="chip" style="background:{colour(k)}"></span>{html.escape(k)} '
                     f'{s["shares"].get(k, 0):.0%}</span>' for k in labels)
    summary_rows = _rows([
        ("audio", f"{s['duration_s']:.1f} s ({s['speech_s']:.1f} s speech)"),
        ("emotion windows", s["windows"]),
        ("dominant emotion", s["dominant"] or "–"),
        ("arousal mean / peak", f"{_fmt(s['arousal_mean'])} / {_fmt(s['arousal_peak'])}"),
        ("longest negative run", f"{s['negative_run_s']:.1f} s"),
        ("transcript", f"{s['words']} words in {s['spans']} spans"),
    ])
    lat = "".join(f"<tr><th>{k}</th>" + "".join(f'<td class="num">{v[q]:.0f}</td>' for q in ("p50", "p95", "max")) + "</tr>"
                  for k, v in s["latency_ms"].items())
    h = s["health"]
    health_rows = _rows([("overflows", h["overflows"]), ("dropped samples", h["dropped_samples"]),
                         ("dropped windows", h["dropped_windows"]), ("skipped transcript audio", f"{h['skipped_audio_s']:.1f} s"),
                         ("clipped samples", h["clipped_samples"]), ("warnings", "; ".join(h["warnings"]) or "none"),
                         ("processing (wall)", f"{s['wall_s']:.1f} s")])
    spans = []
    for e in events:
        if e.get("type") == "transcript" and e.get("final") and e.get("text"):
            tag = e.get("emotion") or None
            c = colour(tag["label"]) if tag else "#ccc"
            what = f"{tag['label']} {tag['confidence']:.2f}" if tag else "no window"
            spans.append(f'<li style="border-left-color:{c}"><span class="t">{_clock(e["start"])}</span>'
                         f'<span class="tag">{html.escape(what)}</span>{html.escape(e["text"])}</li>')
    transcript = f'<ol class="transcript">{"".join(spans)}</ol>' if spans else "<p>no transcript</p>"
    chart = pio.to_html(figure(events), include_plotlyjs=plotly_js, full_html=False, validate=False,
                        config={"displaylogo": False, "responsive": True}, default_height="460px")
    err = f'<p class="error">error: {html.escape(error)}</p>' if error else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>{html.escape(title)} · stream-ser report</title><style>{_STYLE}</style></head>
<body>
<h1>{html.escape(title)}</h1>
{err}
<h2>Summary</h2>
<table>{summary_rows}</table>
<h2>Emotion timeline</h2>
<div class="legend">{legend}</div>
{chart}
<h2>Transcript</h2>
{transcript}
<h2>Latency and health</h2>
<table><tr><th>latency ms</th><th class="num">p50</th><th class="num">p95</th><th class="num">max</th></tr>{lat}</table>
<table>{health_rows}</table>
</body></html>
"""


def write_png(events: list[dict], path: str | os.PathLike, title: str = "") -> None:
    """The timeline as a PNG (stacked probabilities, label strip, arousal)."""
    try:
        import matplotlib
    except ImportError:
        raise UsageError("--png needs matplotlib (pip install 'stream-ser[png]')") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    emotions = [e for e in events if e.get("type") == "emotion"]
    labels = _labels(emotions) or list(EMOTIONS)
    xs, probs, arousal = _series(emotions, labels)
    hop = _hop(emotions)
    end = max((e["end"] for e in events), default=1.0)
    fig, (ax, strip, ar) = plt.subplots(3, 1, figsize=(10, 4.8), sharex=True, gridspec_kw={"height_ratios": [5, 0.6, 2.4]})
    if xs:
        ax.stackplot(xs, [probs[k] for k in labels], labels=labels, colors=[colour(k) for k in labels], linewidth=0)
        for e in emotions:
            c = (e["start"] + e["end"]) / 2
            strip.axvspan(c - hop / 2, c + hop / 2, color=colour(e["label"]), lw=0)
        ar.plot(xs, [math.nan if a is None else a for a in arousal], color="#444", lw=1.2)
    ax.set_ylim(0, 1)
    ax.set_ylabel("probability")
    ax.legend(loc="lower left", bbox_to_anchor=(0, 1.0), ncol=len(labels), fontsize=8, frameon=False)
    if title:
        ax.set_title(title, loc="right", fontsize=9)
    strip.set_yticks([])
    strip.set_ylabel("label", rotation=0, ha="right", va="center")
    ar.set_ylim(0, 1)
    ar.set_ylabel("arousal")
    ar.set_xlabel("audio time (s)")
    ar.set_xlim(0, end)
    fig.tight_layout()
    try:
        fig.savefig(path, dpi=120)
    except OSError as e:
        raise UsageError(f"cannot write {path}: {e.strerror or e}") from None
    finally:
        plt.close(fig)

