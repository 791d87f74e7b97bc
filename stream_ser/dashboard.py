"""The live view: a rich dashboard of the current emotion, the emotion
timeline, the emotion-tagged transcript and the stream's health.  It renders
a :class:`SessionState` (fed events only, never a model or a stage), so the
same view serves ``listen`` and ``replay``."""

from __future__ import annotations

import math
import time
from bisect import bisect_left, bisect_right
from collections import Counter
from typing import Callable

from .events import EmotionEvent, Event, StatusEvent
from .keys import KeyReader
from .labels import UNCERTAIN, emotion_look
from .session import SessionState, percentiles


def _clock(seconds: float) -> str:
    """Audio or wall seconds as m:ss (h:mm:ss from an hour)."""
    s = int(max(0.0, seconds))
    h, s = divmod(s, 3600)
    return f"{h}:{s // 60:02d}:{s % 60:02d}" if h else f"{s // 60}:{s % 60:02d}"


def _ms(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    return f"{value:.0f} ms" if value < 1000 else f"{value / 1000:.2f} s"


# ---------------------------------------------------------------- the look
SILENCE, PENDING, BEFORE = "·", "░", " "  # timeline cells without an emotion
_NICE_STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200)
_EIGHTHS = " ▏▎▍▌▋▊▉"


def _chip(letter: str, bg: str, fg: str):
    from rich.text import Text

    return Text.assemble((letter, f"bold {fg} on {bg}"))  # style on the span only: appended text stays plain


def _bar(fraction: float, width: int) -> str:
    """A horizontal bar in eighths of a cell."""
    eighths = int(round(max(0.0, min(1.0, fraction)) * width * 8))
    full, part = divmod(eighths, 8)
    return ("█" * full + (_EIGHTHS[part] if part else "")).ljust(width)


# ---------------------------------------------------------------- the live view
class Dashboard:
    """The live terminal dashboard (rich): the current emotion, an emotion
    timeline, the emotion-tagged transcript and the stream's health.

    Threading: :meth:`update` is called on one thread (the CLI's main thread)
    and only stores the event under a short lock; it never draws.  rich Live's
    own refresh thread draws at ``refresh_hz`` whatever the event rate: it
    copies what it needs under the same lock and renders from the copy, so
    neither side waits for the other's work.  Each screen region is re-rendered
    only when its inputs changed, and otherwise replayed from a cache, which
    keeps a frame cheap (see bench/dashboard.py).  ``q`` is read by a daemon
    thread (stdin in cbreak mode, only when stdin and the console are
    terminals) that calls ``on_quit`` once, so ``on_quit`` must be
    thread-safe.  Ctrl-C stays with the CLI's signal handler (cbreak keeps
    ISIG).

    Args:
        source_name, sample_rate: shown until a status event names them.
        on_quit: called when the user presses ``q``.
        console: where to draw (default: a rich Console on stdout).
        refresh_hz: redraws per second (status comes at 1 Hz, events at a few Hz).
        history: audio seconds the timeline shows at least (a cell a second,
            so a wide terminal shows more).
        whole_session: show the whole session compressed instead of the last
            ``history`` seconds.  None: switch to it once audio arrives faster
            than real time (``replay --speed 0``), where the last minute flies by.
        min_confidence: below it an emotion is shown as uncertain (with ``state``
            given, the state's own ``uncertain_below`` decides).
        hold: wall seconds an emotion stays "now" after it arrived (it also
            stays while its utterance goes on).
        clock: monotonic wall clock (tests pass their own).
    """

    def __init__(self, source_name: str = "", sample_rate: int = 0, on_quit: Callable[[], None] | None = None, *,
                 console=None, refresh_hz: float = 8.0, history: float = 60.0, whole_session: bool | None = None,
                 min_confidence: float = 0.2, hold: float = 2.0, clock: Callable[[], float] = time.monotonic,
                 transcript: bool = True, state: SessionState | None = None):
        self.on_quit = on_quit
        self.state = state or SessionState(source_name, sample_rate, transcript=transcript, clock=clock,
                                           uncertain_below=min_confidence)
        self.console, self.refresh_hz = console, refresh_hz
        self.history, self.whole_session = history, whole_session
        self.min_confidence = self.state.uncertain_below  # one threshold for the badge, the tags and the timeline
        self.hold, self.clock = hold, clock
        self._started = clock()
        self._quitting = False
        # ---- state of the drawing thread
        self._caches: dict[str, tuple] = {}
        self._whole = False
        self._live = None
        self._keys: KeyReader | None = None

    @property
    def transcript(self) -> bool:
        return self.state.transcript

    def update(self, event: Event) -> None:
        """Store one event in the state (cheap; never draws)."""
        self.state.update(event)

    def __enter__(self) -> "Dashboard":
        from rich.console import Console
        from rich.live import Live

        self.console = self.console or Console()
        self._started = self.clock()
        self._live = Live(self, console=self.console, refresh_per_second=self.refresh_hz)
        self._live.__enter__()
        if self.on_quit is not None and self.console.is_terminal:
            self._keys = KeyReader(self._key)
            self._keys.open()
        return self

    def __exit__(self, *exc) -> bool:
        try:
            if self._live is not None:
                self._live.__exit__(*exc)  # draws the last frame and, on a terminal, ends its line
        finally:
            if self._keys is not None:
                self._keys.close()
            if not self.console.is_terminal:
                self.console.file.write("\n")  # Live leaves no newline outside a terminal (GUIDE §1)
            self.console.file.flush()
        return False

    def _key(self, key: str) -> None:  # the key reader's thread
        if key in "qQ" and not self._quitting:
            self._quitting = True
            self.on_quit()

    # ---- drawing (rich's refresh thread, or whoever prints the dashboard) ----
    def __rich_console__(self, console, options):
        from rich.segment import Segment
        from rich.text import Text

        try:
            lines = self._render(console, options)
        except Exception as e:  # a drawing bug must not kill Live's refresh thread
            lines = console.render_lines(Text(f"dashboard error: {e!r}", style="bold red"), options)
        new_line = Segment.line()
        for line in lines:
            yield from line
            yield new_line

    def _render(self, console, options) -> list:
        """The frame as lines of segments: header, [warnings], now | health,
        timeline, transcript; each region from its cache unless its key changed."""
        from rich.segment import Segment
        from rich.text import Text

        width, height = options.max_width, options.height or console.height
        st_ = self.state
        with st_.lock:
            s = {"now": self.clock(), "audio": st_.audio, "status": st_.status, "in_speech": st_.in_speech,
                 "utterance": st_.utterance, "emotion": st_.emotion, "emotion_at": st_.emotion_at,
                 "versions": st_.versions.copy(), "lat": {k: list(v) for k, v in st_.recent.items()},
                 "labels": list(st_.labels), "first_event": st_.first_event, "lines": st_.committed,
                 "source": st_.source_name, "rate": st_.sample_rate}
        st, ver = s["status"], s["versions"]
        e = s["emotion"]
        # the last emotion is "now" while its utterance lasts and for `hold` seconds after
        live = e is not None and (s["now"] - s["emotion_at"] <= self.hold or (s["in_speech"] and e.utterance >= s["utterance"]))
        warnings = tuple(st.warnings) if st else ()
        big = height >= 32  # room for a three-row badge
        top_h = len(s["labels"]) + 3 + 2 * big  # borders, badge and a bar per label
        tx_h = max(3, height - 1 - bool(warnings) - top_h - 5)
        left = width // 2

        def region(name, key, build, w, h):
            key = (key, w, h)
            hit = self._caches.get(name)
            if hit is None or hit[0] != key:
                rendered = console.render_lines(build(), options.update_dimensions(w, h), pad=True)
                # merged runs of one style: fewer segments for Live to write each frame
                hit = (key, [list(Segment.simplify(line)) for line in rendered])
                self._caches[name] = hit
            return hit[1]

        name, rate = s["source"] or "input", s["rate"]
        elapsed = int(s["now"] - self._started)
        lines = list(region("header", (name, rate, elapsed, int(s["audio"]), self._quitting),
                            lambda: self._header(name, rate, elapsed, s["audio"], width), width, 1))
        if warnings:
            lines += region("warnings", warnings, lambda: Text(" ! " + "; ".join(warnings), style="bold bright_white on red3",
                                                                no_wrap=True, overflow="ellipsis"), width, 1)
        now = region("now", (ver["now"], live, top_h), lambda: self._now(s, live, big), left, top_h)
        health = region("health", ver["health"], lambda: self._health(s, width - left, top_h), width - left, top_h)
        lines += [a + b for a, b in zip(now, health)]
        whole = self._whole = self._whole or self._compressed(s)
        cells, dt, first = self._cells(width - 4, s, whole)  # inside the panel's border and padding
        lines += region("timeline", (ver["timeline"], whole, dt, first, tuple(s["labels"])),
                        lambda: self._timeline(cells, dt, first, whole, s["labels"]), width, 5)
        lines += region("transcript", ver["transcript"], lambda: self._transcript(s), width, tx_h)
        return lines

    def _compressed(self, s: dict) -> bool:
        if self.whole_session is not None:
            return self.whole_session
        wall = s["now"] - (s["first_event"] if s["first_event"] is not None else s["now"])
        return s["audio"] > 1.5 * wall + 5.0

    def _header(self, name: str, rate: int, elapsed: float, audio: float, width: int):
        from rich.cells import cell_len, set_cell_size
        from rich.text import Text

        right = Text("stopping…", style="bold gold3") if self._quitting else Text("q quit", style="dim")
        khz = f" · {rate / 1000:g} kHz" if rate else ""
        clocks = Text.assemble(("  ·  ", "dim"), f"elapsed {_clock(elapsed)}", ("  ·  ", "dim"), f"audio {_clock(audio)}")
        # a narrow terminal shortens the source's name first, then the clocks; the key hint stays whole
        # (widths in terminal cells: a CJK character takes two)
        room = width - right.cell_len - 2 - cell_len("stream-ser  ·  ") - cell_len(khz) - clocks.cell_len
        if cell_len(name) > room:
            name = set_cell_size(name, max(8, room - 1)).rstrip() + "…"
        left = Text.assemble(("stream-ser", "bold"), ("  ·  ", "dim"), name, khz, clocks)
        left.truncate(max(1, width - right.cell_len - 2), overflow="ellipsis")
        return Text.assemble(left, " " * max(1, width - left.cell_len - right.cell_len), right, no_wrap=True)

    def _now(self, s: dict, live: bool, big: bool):
        from rich.console import Group
        from rich.padding import Padding
        from rich.panel import Panel
        from rich.text import Text

        e: EmotionEvent | None = s["emotion"]
        if live and e.confidence >= self.min_confidence:
            letter, bg, fg = emotion_look(e.label)
            word, detail, style = e.label.upper(), f"{e.confidence:.2f}", f"bold {fg} on {bg}"
        elif live:
            word, detail, style = "UNCERTAIN", f"{e.label}? {e.confidence:.2f}", f"bold {UNCERTAIN[2]} on {UNCERTAIN[1]}"
            letter = UNCERTAIN[0]
        else:
            letter, style = "·", "bold reverse" if s["in_speech"] else "bold"
            word = "SPEECH" if s["in_speech"] else "LISTENING"
            detail = f"last: {e.label} {e.confidence:.2f}" if e else ("first window soon" if s["in_speech"] else "no speech yet")
        if letter not in "·?":
            word = " ".join(word)  # letter-spaced: the emotion is the biggest thing on screen
        badge = Text(f"{letter}   {word}   {detail}", justify="center", no_wrap=True, overflow="ellipsis")
        rows = [Padding(badge, (1 if big else 0, 0), style=style, expand=True)]
        if e is not None:
            rows.append(_Bars(e, live))
        # the events' own number, so an utterance on screen is the same one in the JSONL
        title = "now" + (f" · utterance {e.utterance} · {e.start:.1f}-{e.end:.1f} s" if e else "")
        return Panel(Group(*rows), title=title, title_align="left", border_style="dim", padding=0)

    def _health(self, s: dict, width: int, height: int):
        from rich.console import Group
        from rich.panel import Panel
        from rich.table import Table
        from rich.text import Text

        st: StatusEvent | None = s["status"]
        grid = Table.grid(padding=(0, 1))
        grid.add_column(style="dim", no_wrap=True, min_width=9)
        grid.add_column(no_wrap=True, overflow="ellipsis")
        meter = 10 if width < 50 else 20  # cells for -60..0 dBFS; leaves room for "-1 dBFS CLIP 37" at 80 columns
        if st is None or not math.isfinite(st.level_dbfs):
            level = Text.assemble(("░" * meter, "dim"), " silent")
        else:
            colour = "red3" if st.level_dbfs > -3 else "gold3" if st.level_dbfs > -12 else "green3"
            level = Text.assemble((_bar((st.level_dbfs + 60) / 60, meter).replace(" ", "░"), colour), f" {st.level_dbfs:.0f} dBFS")
        if st is not None and st.clipped_samples:
            level.append(f" CLIP {st.clipped_samples}", style="bold bright_white on red3")
        grid.add_row("input", level)
        grid.add_row("vad", Text("● speech", style="bold green3") if s["in_speech"] else Text("○ silence", style="dim"))
        if st is not None:
            grid.add_row("overflows", Text(str(st.overflows), style="bold red3" if st.overflows else ""))
            dropped = f"{st.dropped_samples} samples" + (f" · {st.dropped_windows} windows" if st.dropped_windows else "")
            grid.add_row("dropped", Text(dropped, style="bold red3" if st.dropped_samples or st.dropped_windows else ""))
            if st.skipped_audio_s:
                grid.add_row("skipped", Text(f"{st.skipped_audio_s:.1f} s not transcribed", style="gold3"))
        # latency in ms (last, p50, p95 of recent events) and compute time / audio time per stage
        # in a narrow panel (a terminal under ~74 columns) only the median and the compute ratio fit
        narrow = width < 37
        lat = Table.grid(padding=(0, 1))
        heads = ("latency ms", "p50", "compute") if narrow else ("latency ms", "last", "p50", "p95", "compute")
        for justify in ("left", *["right"] * (len(heads) - 1)):
            lat.add_column(justify=justify, no_wrap=True)
        lat.add_row(*(Text(h, style="dim") for h in heads))
        ratios = st.compute_ratio if st is not None else {}
        for stage, values in s["lat"].items():
            if narrow:
                row = [f"{percentiles(values)['p50']:.0f}"] if values else ["-"]
            else:
                p = percentiles(values)
                row = [f"{v:.0f}" for v in (values[-1], p["p50"], p["p95"])] if values else ["-"] * 3
            r = ratios.get(stage)
            ratio = Text("-" if r is None else f"{r:.2f}×", style="bold red3" if r and r >= 1 else "gold3" if r and r >= 0.7 else "")
            lat.add_row(stage, *row, ratio)
        gap = [""] if grid.row_count + 3 < height - 2 else []  # a blank row between the two when there is room
        return Panel(Group(grid, *gap, lat), title="health", title_align="left", border_style="dim", padding=(0, 1))

    def _cells(self, n: int, s: dict, whole: bool) -> tuple[list[str], float, int]:
        """The timeline's ``n`` cells (a label, "?", PENDING, SILENCE or BEFORE),
        the audio seconds per cell and the index of the first cell.  A cell is
        silence unless half of it (or 0.5 s) is speech; a speech cell takes the
        majority label of the windows centred in it, else the nearest window
        covering it, else it is still pending (its window is not done yet)."""
        audio = s["audio"]
        dt = next((x for x in _NICE_STEPS if x * n >= (max(audio, 1.0) if whole else self.history)), _NICE_STEPS[-1])
        first = 0 if whole else max(0, int(audio // dt) - n + 1)  # fills from the left, then scrolls
        key = (s["versions"]["timeline"], n, dt, first)
        hit = self._caches.get("cells")
        if hit is not None and hit[0] == key:
            return hit[1], dt, first
        a0, a1 = first * dt, (first + n) * dt
        with self.state.lock:
            # utterances are never an hour long: those starting earlier are over before the strip begins
            spans = [(a, b if b is not None else audio, u) for a, b, u in self.state.spans[bisect_left(self.state.spans, [a0 - 3600]):]]
            windows = self.state.windows[bisect_left(self.state.centres, a0 - 3.0):bisect_right(self.state.centres, a1 + 3.0)]
        starts = [a for a, _, _ in spans]
        centres = [w[0] for w in windows]
        cells = []
        for k in range(first, first + n):
            a, b = k * dt, (k + 1) * dt
            if b <= 0 or a >= audio:
                cells.append(BEFORE)
                continue
            speech, heard, j = 0.0, set(), bisect_right(starts, b) - 1
            while j >= 0 and spans[j][1] > a:  # spans do not overlap: walk back over those reaching into the cell
                speech += min(b, spans[j][1]) - max(a, spans[j][0])
                heard.add(spans[j][2])
                j -= 1
            if speech < min(0.5 * (min(b, audio) - max(a, 0.0)), 0.5):  # the newest cell is only partly heard
                cells.append(SILENCE)
                continue
            # a window runs on past the end of its utterance: the speech in a
            # cell is told by the windows of its own utterance where there are any
            i0, i1 = bisect_left(centres, a), bisect_left(centres, b)
            if i1 > i0:
                centred = windows[i0:i1]
                centred = [w for w in centred if w[4] in heard] or centred
                cells.append(Counter(w[3] for w in centred).most_common(1)[0][0])
                continue
            near = [w for w in windows[max(0, i0 - 1):i0 + 1] if w[1] < b and w[2] > a]
            near = [w for w in near if w[4] in heard] or near
            cells.append(min(near, key=lambda w: abs(w[0] - (a + b) / 2))[3] if near else PENDING)
        self._caches["cells"] = (key, cells)
        return cells, dt, first

    def _timeline(self, cells: list[str], dt: float, first: int, whole: bool, labels: list[str]):
        from rich.console import Group
        from rich.panel import Panel
        from rich.text import Text

        n = len(cells)
        strip = Text(no_wrap=True, overflow="crop")
        for c in cells:
            if c in (SILENCE, PENDING, BEFORE):
                strip.append(c, style="dim")
            else:
                letter, bg, fg = UNCERTAIN if c == "?" else emotion_look(c)
                strip.append(letter, style=f"{fg} on {bg}")
        # a time mark every `every` audio seconds, far enough apart for the labels
        every = next((x for x in _NICE_STEPS if x >= 7 * dt and x % dt == 0), _NICE_STEPS[-1])
        marks = [" "] * n
        t = math.ceil(max(0, first * dt) / every) * every
        while (pos := int(round(t / dt)) - first) < n:
            label = "|" + _clock(t)
            if pos + len(label) <= n:
                marks[pos:pos + len(label)] = label
            t += every
        legend = Text(no_wrap=True, overflow="ellipsis")
        for label in labels:
            legend.append_text(_chip(*emotion_look(label)))
            legend.append(f" {label}  ")
        title = f"emotion timeline · {'whole session' if whole else f'last {n * dt:g} s'}" + (f" · {dt:g} s a cell" if dt > 1 else "")
        return Panel(Group(strip, Text("".join(marks), style="dim", no_wrap=True, overflow="crop"), legend),
                     title=title, title_align="left", border_style="dim", padding=(0, 1),
                     subtitle=f"{SILENCE} silence  {PENDING} speech, no window yet  ? uncertain", subtitle_align="right")

    def _transcript(self, s: dict):
        from rich.panel import Panel

        return Panel(_Transcript(self.state, self._tag, self._caches.setdefault("transcript rows", {})), title=f"transcript · {s['lines']} line{'' if s['lines'] == 1 else 's'}", title_align="left",
                     border_style="dim", padding=(0, 1))

    def _tag(self, emotion: dict | None):
        from rich.text import Text

        if not emotion:
            return Text(" " * 11)
        sure = emotion["confidence"] >= self.min_confidence
        chip = _chip(*(emotion_look(emotion["label"]) if sure else UNCERTAIN))
        return Text.assemble(chip, (f" {emotion['label']:<9}", "" if sure else "dim"))


class _Bars:
    """A bar per class of the smoothed probabilities (full width = 1.0) in the
    model's label order: bars that swapped places would be hard to follow."""

    def __init__(self, event: EmotionEvent, live: bool):
        self.event, self.live = event, live

    def __rich_console__(self, console, options):
        width = max(4, options.max_width - 17)  # the chip, the name, the figure and spaces take 17
        for label, p in self.event.probs.items():
            letter, bg, fg = emotion_look(label)
            top = self.live and label == self.event.label
            line = _chip(letter, bg, fg)
            line.append(f" {label:<9} ", style="bold" if top else "")
            line.append(_bar(p, width), style=bg if self.live else f"{bg} dim")
            line.append(f" {p:.2f}", style="bold" if top else "dim")
            line.no_wrap, line.overflow = True, "crop"
            yield line


class _Transcript:
    """The last committed lines that fit the height, then the partial, greyed.
    A committed line never changes, so its wrapped rows are kept per width in
    ``cache`` (owned by the drawing thread)."""

    def __init__(self, state: SessionState, tag: Callable, cache: dict):
        self.state, self.tag, self.cache = state, tag, cache

    def __rich_console__(self, console, options):
        from rich.segment import Segment
        from rich.text import Text

        height, width = options.height or 10, options.max_width
        with self.state.lock:
            entries = list(self.state.lines)[-height:]  # each takes at least one row
            partial = self.state.partial
        kept, rows = {}, []
        for seq, start, text, emotion in entries:
            key = (seq, width)
            kept[key] = self.cache.get(key) or _rows(console, start, self.tag(emotion), Text(text), width)
            rows += kept[key]
        self.cache.clear()
        self.cache.update(kept)
        if partial is not None:
            rows += _rows(console, partial.start, Text("…" + " " * 10, style="dim"), Text(partial.text.strip(), style="dim italic"), width)
        if not rows:
            idle = "waiting for speech…" if self.state.transcript else "transcript off (--no-transcript)"
            rows = _rows(console, None, Text(" " * 11), Text(idle, style="dim"), width)
        for line in rows[-height:]:  # scrolled to the end
            yield from line
            yield Segment.line()


def _rows(console, start: float | None, tag, text, width: int) -> list[list]:
    """A transcript entry as rows of segments: time, tag, then the text wrapped
    under itself (a hanging indent)."""
    from rich.text import Text

    indent = 18  # "mm:ss" + space + tag (11) + space
    out = []
    for i, line in enumerate(text.wrap(console, max(10, width - indent))):
        head = Text.assemble(((_clock(start) if start is not None else "").rjust(5), "dim"), " ", tag, " ") if i == 0 else Text(" " * indent)
        out.append(list((head + line).render(console)))
    return out
