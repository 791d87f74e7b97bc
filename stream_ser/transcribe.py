"""Transcript stage: faster-whisper decodes the open utterance greedily as its
speech grows, commits the words that are settled, and decodes the whole
utterance once more with a wider beam when it ends.  Committed text is never
re-emitted or changed.

When a word is committed (the commit policy):
  - during the utterance, a greedy re-decode after each ``cadence`` s of new
    audio (the first once ``first_decode`` s have arrived) commits the longest
    prefix of words on which it and the previous decode agree
    (LocalAgreement-2) or, with ``settle``, that the previous decode did not
    hear and that end at least ``settle`` s before the decoded audio does
    (their right context is heard; the first decode's words too).  Words two
    decodes disagree on wait.  A decode picks up after its own reading of the
    last committed word or, where it has none, after the committed audio
    (:meth:`Transcriber._fresh`);
  - at the utterance's end, one decode of the whole utterance with
    ``final_beam_size`` replaces what is not committed yet (unless the last
    partial decode already heard the whole of the speech: its words are used).

Every decode is bounded: greedy or beam at temperature 0 only (whisper's
temperature fallback re-decodes up to five more times, with five samples
each), and at most ``16 + tokens_per_second`` x audio seconds of text (a
repetition loop such as "flower-f-f-f-f..." otherwise runs to whisper's
448-token limit).  Unbounded decodes were what once held a commit 9 s.
"""

from __future__ import annotations

import difflib
import logging
import os
import queue
import re
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Callable

import numpy as np

from .cpu import unclaimed_seconds  # CTranslate2 decodes on its own threads: their CPU is the decoder's
from .errors import ModelError
from .events import TranscriptEvent
from .features import SAMPLE_RATE
from .ring import RingBuffer
from .vad import Utterance
from .whisper_states import default_model_path  # the bundled model: the emotion features read its encoder too

log = logging.getLogger("stream_ser")


BUNDLED_NAME = "tiny.en"
ANCHOR_SLACK = int(0.3 * SAMPLE_RATE)  # how far a re-decoded word's end may move and still be the committed word
COMMITTED_KEPT = 8  # committed words of an utterance a decode's words are aligned with
OVERHANG = int(0.1 * SAMPLE_RATE)  # how far past the committed audio a re-reading of its last word may end
NUDGE = int(0.06 * SAMPLE_RATE)  # ... and start (whisper gives a word squeezed to the boundary zero length there)
FAST_CONTEXT = 6.0  # seconds of the previous utterance decoded with each one in a replay at --speed 0


@dataclass
class TranscribeOptions:
    """Options of the transcript stage.

    Attributes:
        model: a faster-whisper model directory or name; None is the bundled tiny.en.
        device: "auto" (CUDA when available, else CPU), "cpu" or "cuda".
        compute_type: "auto" is int8 on CPU and float16 on a GPU.
        cpu_threads: CTranslate2's threads for one decode.  One: on 2 cores a
            second thread made the transcriber's decodes (2-10 s, greedy and
            beam 5) 9-89% slower in wall time for 7-59% more CPU
            (``bench/decode_threads.py``), and the emotion stage and the
            capture want the other core.
        num_workers: decodes one loaded model runs at once when several
            threads call it (CTranslate2's ``inter_threads``): ``serve``'s
            sessions share one model, and with 1 their decodes take turns.
        beam_size: decoder beam of the partial decodes of an open utterance (1 is greedy).
        final_beam_size: decoder beam of the decode of a finished utterance,
            whose words replace the uncommitted rest of its partials.
        first_decode: seconds of audio after the onset before an open
            utterance is first decoded (whisper guesses on less).
        cadence: seconds of new audio between partial decodes of an open utterance.
        settle: during an utterance, words ending this many seconds before
            the decoded audio ends are committed even without a second
            decode's agreement; None commits by agreement only.
        tokens_per_second: a decode stops after 16 + this x its audio seconds
            tokens (speech is at most ~5 tokens a second), so that a repetition
            loop costs little.
        repetition_penalty: passed to the decoder (1 is none); a slight penalty
            keeps greedy and beam decodes out of repetition loops.
        tail: seconds after the VAD end included in an utterance's final decode.
        max_decode: longest audio in one decode; older uncommitted words are
            committed when an utterance runs longer, so cost does not grow.
        context: an utterance that starts within this many seconds of the
            previous one is decoded together with it (as context only: its
            words were committed already); 0 (the default) is off: every
            decode would re-read the previous utterance's words.  A replay at
            ``--speed 0`` uses ``FAST_CONTEXT`` when this is 0.
        max_lag: a live stream that falls this far behind skips ahead (counted).
        merge: finished utterances waiting in a queue (a paced stream that fell
            behind) are decoded together up to this many seconds, one decode
            instead of many.  Not at ``--speed 0``: which utterances happen to
            be queued there depends on thread scheduling.
        encoder_padding: seconds of padding after the decoded audio that the
            encoder sees; None is whisper's whole 30 s window.  faster-whisper
            pads every decode to 30 s, and encoding those 30 s was more than
            half of a short decode's CPU time.  Measured on the shared recordings
            (``bench/encoder_padding.py``): 10 s halves the CPU per decode,
            for 3 more word errors in 145 with beam 5 (5 against 2) and one
            fewer with greedy decodes (4 against 5); 3-5 s of padding cost
            beam 5 9-10 words (a sentence said twice).
    """

    model: str | None = None
    device: str = "auto"
    compute_type: str = "auto"
    cpu_threads: int = 1
    num_workers: int = 1
    beam_size: int = 1
    final_beam_size: int = 5
    first_decode: float = 2.0
    cadence: float = 1.25
    settle: float | None = 0.5
    tokens_per_second: float = 8.0
    repetition_penalty: float = 1.05
    tail: float = 0.2
    max_decode: float = 20.0
    context: float = 0.0
    max_lag: float = 15.0
    merge: float = 24.0
    no_speech_threshold: float = 0.6
    log_prob_threshold: float = -1.0
    language: str | None = "en"
    encoder_padding: float | None = 10.0


def decode_kwargs(options: TranscribeOptions, seconds: float, beam_size: int, prompt: str = "") -> dict:
    """faster-whisper ``transcribe`` options of one transcriber decode of ``seconds`` of audio:
    temperature 0 only, the token bound, the prompt's last 200 characters, and
    faster-whisper's own VAD filter (it drops the silence that whisper fills with words)."""
    o = options
    return dict(
        language=o.language, beam_size=beam_size, word_timestamps=True, temperature=0.0,
        repetition_penalty=o.repetition_penalty, max_new_tokens=min(224, int(16 + o.tokens_per_second * seconds)),
        condition_on_previous_text=False, initial_prompt=prompt[-200:] or None,
        no_speech_threshold=o.no_speech_threshold, log_prob_threshold=o.log_prob_threshold,
        vad_filter=True, vad_parameters={"min_silence_duration_ms": 500, "speech_pad_ms": 300})


def load_whisper(options: TranscribeOptions):
    """Load the model before the stream opens.  On a GPU machine whose CUDA
    libraries are missing, fall back to the CPU with one warning line."""
    from faster_whisper import WhisperModel

    # "tiny.en" names the bundled model: resolve it here rather than in a hub cache
    path = default_model_path() if options.model in (None, "", BUNDLED_NAME) else options.model
    if os.sep in path and not os.path.exists(path):
        raise ModelError(f"ASR model not found: {path}")
    if os.path.isfile(path) or (os.path.isdir(path) and not os.path.exists(os.path.join(path, "model.bin"))):
        raise ModelError(f"ASR model {path!r} is not a faster-whisper model directory (one holding model.bin): "
                         f"pass such a directory, or {BUNDLED_NAME} for the bundled model")

    if options.encoder_padding is not None and not options.encoder_padding >= 0:
        raise ValueError(f"encoder_padding must be None or >= 0 seconds, not {options.encoder_padding!r}")

    padding = options.encoder_padding

    class Whisper(WhisperModel):
        def encode(self, features):
            # faster-whisper has padded ``features`` to whisper's 3000 frames with zeros (no frame of
            # log-mel speech or silence is all zeros): hand the encoder the speech and padding_frames
            # of that padding only.  Decided per call, from the features: the model is shared
            # between sessions' threads.
            if padding is not None:
                heard = np.flatnonzero(np.any(features != 0, axis=tuple(range(features.ndim - 1))))
                frames = (heard[-1] + 1 if len(heard) else 0) + int(padding * self.frames_per_second)
                # in hundreds: a few shapes, an even count for the encoder's stride-2 conv, and never a
                # count CTranslate2 could take for an encoded input's model width
                frames = -(-frames // 100) * 100
                if frames < features.shape[-1]:
                    features = np.ascontiguousarray(features[..., :frames])
            return super().encode(features)

    def make(device: str):
        compute = options.compute_type
        if compute == "auto":
            compute = "float16" if device == "cuda" else "int8"
        return Whisper(path, device=device, compute_type=compute, cpu_threads=options.cpu_threads,
                       num_workers=options.num_workers, local_files_only=True)

    device = options.device
    if device == "auto":
        import ctranslate2

        device = "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"
    try:
        return make(device)
    except Exception as e:
        if device == "cuda":
            try:
                model = make("cpu")
            except Exception:
                pass  # not a CUDA problem: the model itself does not load
            else:
                log.warning("CUDA unavailable for the ASR model (%s); using the CPU", str(e).splitlines()[0])
                return model
        if not os.path.exists(path):  # a model name that is not in the local cache
            raise ModelError(f"ASR model {path!r} is not available offline (nothing is downloaded at run time): "
                             f"pass a faster-whisper model directory, or {BUNDLED_NAME} for the bundled one") from None
        raise ModelError(f"cannot load ASR model {path!r}: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None


@dataclass
class Word:
    start: int  # samples on the stream clock
    end: int
    text: str

    @property
    def key(self) -> str:
        return re.sub(r"[^\w']", "", self.text.lower())


@dataclass
class _Utterance:
    index: int
    begin: int  # first sample to decode (onset less pre-roll)
    end: int | None = None
    onset: int = 0  # the VAD's first speech frame
    decode_from: int = 0  # start of the audio decoded; moves only when a decode would grow too long
    decoded_to: int = 0
    committed_until: int = 0  # end of the last committed word (or where a cut or a skip resumed)
    hypothesis: list[Word] = field(default_factory=list)
    committed_text: str = ""
    committed_words: list[Word] = field(default_factory=list)  # where later decodes pick up (the last few)
    decodes: int = 0  # partial decodes so far


class Transcriber(threading.Thread):
    """Thread: follows the VAD's utterances (:meth:`utterance`), decodes their
    audio from the ring buffer, emits :class:`TranscriptEvent` s through ``emit``.
    Audio outside utterances is never decoded (no text invented on silence).
    Call :meth:`finish` at end of stream."""

    def __init__(self, model, ring: RingBuffer, emit: Callable, options: TranscribeOptions, live: bool,
                 on_error: Callable[[str, BaseException], None] | None = None, partials: bool = True):
        super().__init__(name="transcriber", daemon=True)
        self.model, self.ring, self.emit, self.options, self.live = model, ring, emit, options, live
        # False for a replay as fast as possible: nobody watches the words arrive, and partial decodes
        # (or merging whatever utterances happen to be queued) would make the text depend on how the
        # threads are scheduled.  Each utterance then gets one final beam decode, with the previous
        # utterance's audio as context (FAST_CONTEXT) so that short fragments are heard in their
        # sentence; a very long one is still cut at max_decode.
        self.partials = partials
        if not partials:
            self.options = options = replace(options, merge=0.0, context=options.context or FAST_CONTEXT)
        self.on_error = on_error
        self.cpu_seconds = 0.0
        self._messages: queue.Queue = queue.Queue()
        self._utts: list[_Utterance] = []
        self._eos = False
        self._count = -1
        self._previous: int | None = None  # where the previous utterance began
        self.compute_seconds = 0.0
        self.skipped_seconds = 0.0
        self.error: BaseException | None = None
        self._halt = threading.Event()
        self._emit_lock = threading.Lock()
        self._sealed = False  # after commit_hypotheses: a late decode's words are not emitted
        self._shown: dict[int, list[Word]] = {}  # utterance -> words of its partial not yet final
        self._decided = 0  # see decided(): written by the capture thread, read here (an int: atomic)

    # called from the capture thread
    def utterance(self, u: Utterance) -> None:
        self._messages.put(u)

    def decided(self, sample: int) -> None:
        """The VAD has reported every utterance end before ``sample`` (called after
        :meth:`utterance` for the same audio)."""
        self._decided = sample

    def finish(self) -> None:
        self._messages.put(None)

    def stop(self) -> None:
        self._halt.set()
        self._messages.put(None)

    def _drain(self, block: bool) -> None:
        while True:
            try:
                m = self._messages.get(timeout=0.05) if block else self._messages.get_nowait()
            except queue.Empty:
                return
            block = False
            if m is None:
                self._eos = True
            elif m.kind == "start":
                self._count += 1
                begin = m.preroll_start
                if self._previous is not None and begin - self._previous < self.options.context * SAMPLE_RATE:
                    begin = self._previous
                self._previous = m.preroll_start
                self._utts.append(_Utterance(self._count, m.preroll_start, onset=m.sample, decode_from=begin,
                                              decoded_to=m.preroll_start, committed_until=m.preroll_start))
            elif self._utts:
                self._utts[-1].end = m.sample
            self._hold()

    def _hold(self) -> None:
        self.ring.hold("transcriber", self._utts[0].decode_from if self._utts else None)

    def _decode(self, start: int, end: int, prompt: str, beam_size: int | None = None) -> list[Word]:
        o = self.options
        audio = self.ring.read(start, end)
        t0, c0 = time.perf_counter(), unclaimed_seconds()
        segments, _ = self.model.transcribe(audio, **decode_kwargs(o, len(audio) / SAMPLE_RATE, beam_size or o.beam_size, prompt))
        words = [Word(start + int(w.start * SAMPLE_RATE), start + int(w.end * SAMPLE_RATE), w.word)
                 for s in segments for w in (s.words or [])]
        self.compute_seconds += time.perf_counter() - t0
        c1 = unclaimed_seconds()
        self.cpu_seconds += (c1 - c0) if c0 is not None and c1 is not None else time.perf_counter() - t0
        return [w for w in words if w.key]

    @staticmethod
    def _fresh(u: _Utterance, words: list[Word]) -> list[Word]:
        """Words after what is already committed (a decode may re-read committed audio).

        Whisper's word times move by a frame or two between decodes, and a
        decode may read the last committed words differently ("am I" for "my"),
        so a cut by time alone can repeat or drop the boundary word.  So the
        decode's words from the committed audio on are aligned with the last
        ``COMMITTED_KEPT`` committed words whose audio it re-read, and the words
        after its reading of the last committed word are new: that reading must
        start inside the committed audio (or within ``NUDGE`` of its end) and
        end near its end.  Otherwise (no such reading) the words whose
        midpoint lies after the committed audio are new."""
        first = words[0].start if words else u.committed_until
        reread = [w for w in u.committed_words if w.end > first]
        if reread:
            # context audio before the committed words (the previous utterance's) has words of its own
            k = next((i for i, w in enumerate(words) if w.end > reread[0].start - ANCHOR_SLACK), len(words))
            mine = words[k:]
            ops = difflib.SequenceMatcher(a=[w.key for w in reread], b=[w.key for w in mine], autojunk=False).get_opcodes()
            # the opcode holding the last committed word; its decode words are that word's reading
            tag, _, _, j1, j2 = next(op for op in ops if op[2] == len(reread) and op[1] < op[2])
            if tag == "replace":  # another reading: of its words, those inside the committed audio
                j2 = j1 + sum(1 for w in mine[j1:j2] if w.start < u.committed_until and w.end <= u.committed_until + OVERHANG)
            cut = j2 if tag in ("equal", "replace") else j1
            if (cut and mine[cut - 1].start <= u.committed_until + NUDGE
                    and abs(mine[cut - 1].end - u.committed_until) <= ANCHOR_SLACK):
                return mine[cut:]
        return [w for w in words if (w.start + w.end) // 2 >= u.committed_until]

    def commit_hypotheses(self) -> None:
        """Commit each open utterance's latest partial as final text, and emit
        nothing after it.  For a session that ends early (:meth:`stop`) whose
        last decode did not finish in time: the words already shown stay in the
        transcript files.  Called by the pipeline's capture thread after
        :meth:`stop`; this thread may still be decoding."""
        with self._emit_lock:
            for u in list(self._utts):
                shown = self._shown.get(u.index)
                if shown:
                    self._emit_event(u, shown, final=True)
            self._sealed = True

    def _event(self, u: _Utterance, words: list[Word], final: bool) -> None:
        with self._emit_lock:
            if self._sealed:
                return
            # what a partial shows until a final commits it (commit_hypotheses' words)
            if final and words:
                self._shown[u.index] = [w for w in self._shown.get(u.index, []) if (w.start + w.end) // 2 >= words[-1].end]
            elif not final:
                self._shown[u.index] = list(words)
            self._emit_event(u, words, final)

    def _emit_event(self, u: _Utterance, words: list[Word], final: bool) -> None:
        text = "".join(w.text for w in words).strip()
        if final and text:
            u.committed_text = (u.committed_text + " " + text).strip()
            u.committed_until = max(u.committed_until, words[-1].end)
            u.committed_words = (u.committed_words + words)[-COMMITTED_KEPT:]
        now = time.time()
        captured = self.ring.capture_time(max(words[-1].end, words[0].start + 1) - 1) if words else now
        # Whisper's word times drift, most after a pause (the first word can start
        # half a second early, over silence): a span starts no earlier than its
        # utterance's onset and ends no later than the audio
        start = max(words[0].start, u.onset) if words else u.decode_from
        end = max(start, min(words[-1].end, self.ring.written)) if words else start
        self.emit(TranscriptEvent(
            type="transcript", start=round(start / SAMPLE_RATE, 3), end=round(end / SAMPLE_RATE, 3), emitted_at=now,
            latency_ms=round(max(0.0, now - captured) * 1000, 1), text=text, final=final, utterance=u.index))

    def _finish_utterances(self) -> None:
        o = self.options
        first = self._utts[0]
        group = [first]
        limit = first.decode_from + int(o.merge * SAMPLE_RATE)
        for u in self._utts[1:]:
            if u.end is None or u.end + int(o.tail * SAMPLE_RATE) > limit:
                break
            group.append(u)
        end = group[-1].end + int(o.tail * SAMPLE_RATE)
        if self.ring.written < end and not self.ring.closed:
            self.ring.wait_for(end, timeout=0.05)
            if self.ring.written < end and not self._eos:
                return
        end = min(end, first.decode_from + int(o.max_decode * SAMPLE_RATE)) if len(group) == 1 else end
        if len(group) == 1 and first.decodes and first.decoded_to >= first.end and end >= first.end:
            # the last partial decode heard the whole of the speech (the VAD's end comes a hangover
            # later): its words are the final ones, and a second decode would only delay them
            words = first.hypothesis
        else:
            words = self._fresh(first, self._decode(first.decode_from, end, self._prompt(first), o.final_beam_size))
        for k, u in enumerate(group):
            stop = group[k + 1].begin if k + 1 < len(group) else end
            mine = [w for w in words if (w.start + w.end) // 2 < stop and (k == 0 or (w.start + w.end) // 2 >= u.begin)]
            words = words[len(mine):]
            if mine:
                self._event(u, mine, final=True)
            elif u.hypothesis:
                self._event(u, [], final=False)  # clear a partial that came to nothing
        if len(group) == 1 and end < first.end + int(o.tail * SAMPLE_RATE):
            first.decode_from = first.decoded_to = first.committed_until = end  # a very long utterance: go on after this piece
            first.committed_words = []
            first.hypothesis = []
        else:
            del self._utts[: len(group)]
        self._hold()

    def _fits_one_decode(self, u: _Utterance, decided: int) -> bool:
        """Fast replay: does the rest of ``u`` fit in one final decode?  True or
        False only once the audio says so, whatever the threads' timing: an
        open utterance is too long once its confirmed speech (it ends no
        earlier) is, and may still fit until then (the caller waits)."""
        end = u.end if u.end is not None else max(decided, u.decode_from)
        # (within half the ring, as _long: the capture thread can always write the audio waited for)
        longest = min(int(self.options.max_decode * SAMPLE_RATE), self.ring.capacity // 2)
        return end + int(self.options.tail * SAMPLE_RATE) - u.decode_from <= longest

    def _skip_if_behind(self) -> bool:
        """Live only: when audio waits longer than ``max_lag`` for its first
        decode, drop it (counted in :attr:`skipped_seconds`) rather than drift
        behind without limit.  Lag is audio not yet decoded at all, not the
        span a decode covers."""
        o = self.options
        u = self._utts[0]
        written = self.ring.written
        if not self.live or written - u.decoded_to <= o.max_lag * SAMPLE_RATE:
            return False
        if u.end is not None:  # a finished utterance nobody will wait for
            self.skipped_seconds += max(0, u.end - u.committed_until) / SAMPLE_RATE
            if u.hypothesis:
                self._event(u, [], final=False)
            del self._utts[0]
        else:
            resume = written - int(o.cadence * SAMPLE_RATE)
            self.skipped_seconds += max(0, resume - u.committed_until) / SAMPLE_RATE
            u.decode_from = u.decoded_to = u.committed_until = resume
            u.committed_words = []
            u.hypothesis = []
        self._hold()
        return True

    @staticmethod
    def _prompt(u: _Utterance) -> str:
        # Committed text is context only once its audio is no longer decoded.
        return u.committed_text if u.decode_from > u.begin else ""  # (context audio has its own words)

    @property
    def _long(self) -> int:
        """Samples after which an open utterance is cut: its older words are committed
        (within half the ring, so a held utterance never fills it)."""
        return int(min(self.options.max_decode * SAMPLE_RATE * 0.75, self.ring.capacity / 2))

    def _step_open(self, u: _Utterance) -> None:
        o = self.options
        written = self.ring.written
        due = max(u.decoded_to + int(o.cadence * SAMPLE_RATE), u.onset + int(o.first_decode * SAMPLE_RATE))
        if written < due:
            self.ring.wait_for(due, timeout=0.05)
            return
        # a fast replay cuts where the audio is, not wherever the capture thread has got to
        end = min(written, u.decode_from + int(o.max_decode * SAMPLE_RATE)) if self.partials else u.decode_from + self._long
        words = self._fresh(u, self._decode(u.decode_from, end, self._prompt(u)))
        heard_before, u.decoded_to = u.decoded_to, end
        u.decodes += 1
        # commit the longest prefix of words that the previous decode agrees on (LocalAgreement-2) or,
        # with settle, that it did not hear and whose right context is heard now; where two decodes of
        # the same audio disagree, the words wait for the utterance's final decode
        settled = end - int((o.settle or 0) * SAMPLE_RATE)
        agreed = 0
        while agreed < len(words):
            w = words[agreed]
            if agreed < len(u.hypothesis) and w.key == u.hypothesis[agreed].key:
                agreed += 1
            elif o.settle is not None and (w.start + w.end) // 2 >= heard_before and w.end <= settled:
                agreed += 1  # (the first decode's too: waiting for a second one held an utterance's first words 3 s)
            else:
                break
        long = end - u.decode_from >= self._long
        if long:
            agreed = max(agreed, len(words) - 2)  # bound the decode: commit the older words
        if agreed:
            self._event(u, words[:agreed], final=True)
        if long and u.committed_until > u.decode_from:
            u.decode_from = u.committed_until  # trim committed audio; its text becomes the prompt
            self._hold()
        elif long:  # a long stretch with no words to commit (noise the VAD takes for speech): go on after it,
            # keeping a second for a word across the cut; held here, a full-speed replay would wait for ever
            u.decode_from = u.committed_until = end - int(o.cadence * SAMPLE_RATE)
            u.committed_words = []
            self._hold()
        u.hypothesis = words[agreed:]
        if u.hypothesis:
            self._event(u, u.hypothesis, final=False)
        else:
            with self._emit_lock:  # nothing is shown now: commit_hypotheses must not commit the old partial again
                self._shown.pop(u.index, None)

    def run(self) -> None:
        try:
            while not self._halt.is_set():
                decided = self._decided  # before the messages it vouches for are drained
                self._drain(block=not self._utts)
                if not self._utts:
                    if self._eos:
                        return
                    continue
                if self._skip_if_behind():
                    continue
                u = self._utts[0]
                fits = self.partials or self._fits_one_decode(u, decided)
                if u.end is not None and fits:
                    self._finish_utterances()
                elif self.partials or (not fits and self.ring.written - u.decode_from >= self._long):
                    self._step_open(u)
                else:
                    self.ring.wait_for(u.decode_from + self._long, timeout=0.05)
        except BaseException as e:
            self.error = e
            if self.on_error:
                self.on_error("transcript", e)
        finally:
            self.ring.hold("transcriber", None)
