"""Command line: ``stream-ser listen | replay | train | evaluate``.

Only argparse is imported at start, so ``stream-ser --help`` stays fast; the
heavy stack (TensorFlow, faster-whisper, librosa) loads when a command runs.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading

from .errors import DeviceLost, SourceError, StageError, StreamSerError, UsageError

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_INT, EXIT_TERM = 0, 1, 2, 130, 143
EXIT_PIPE = 141  # the reader of our output went away (128 + SIGPIPE, as the shell reports a killed writer)


def ranged(lo, hi, integer: bool = False):
    """argparse type: a finite number in ``[lo, hi]`` (the ranges in --help are these)."""

    def parse(text: str):
        from .limits import OptionError, check_number

        try:
            value = int(text) if integer else float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {'an integer' if integer else 'a number'}, got {text!r}") from None
        try:
            return check_number("value", value, lo, hi, integer=integer)
        except OptionError as e:
            raise argparse.ArgumentTypeError(e.why) from None

    return parse


finite = ranged(-20.0, 20.0)  # a neutral log-prior: a NaN or infinite one breaks every label


def _add_session_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("output")
    g.add_argument("--jsonl", metavar="PATH", help="write every event as one JSON line, as it happens")
    g.add_argument("--srt", metavar="PATH", help="write the final transcript as SRT, cue by cue")
    g.add_argument("--vtt", metavar="PATH", help="write the final transcript as WebVTT, cue by cue")
    g.add_argument("--subtitles", choices=("emotion", "text"), default="emotion",
                   help="SRT/VTT cue text: '(label conf) words' (emotion, default) or the words alone (text: clean subtitles)")
    g.add_argument("--append", action="store_true",
                   help="add to an existing --jsonl file instead of replacing it (an existing file is otherwise replaced when the session ends)")
    g.add_argument("--plain", action="store_true", help="one line per event instead of the dashboard (automatic when stdout is not a terminal)")
    _add_model_args(p)


def _add_model_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("models")
    g.add_argument("--models", metavar="DIR", help="emotion model directory (default: the bundled models/)")
    g.add_argument("--neutral-bias", type=finite, default=None, metavar="B",
                   help="log-prior of neutral, -20 to 20, replacing the model's (labels.json log_prior; the bundled model's is 0: classes weighed as trained; higher = fewer emotion labels)")
    g.add_argument("--asr-model", metavar="PATH|NAME", help="faster-whisper model directory, or a name already in the local Hugging Face cache (default: tiny.en, bundled)")
    g.add_argument("--no-transcript", action="store_true", help="emotion only: do not run the transcript stage")
    add_device_arg(g)
    g = p.add_argument_group("stream")
    g.add_argument("--vad-mode", type=int, choices=range(4), default=None, metavar="0-3", help="webrtcvad aggressiveness (default 2)")
    g.add_argument("--hop", type=float, default=None, metavar="S", help="seconds between emotion windows of an utterance, 0.01-60 (default 1.0)")


def add_device_arg(g) -> None:
    """``--compute`` (issue 25; any command that loads the models can add it, then call
    :func:`apply_device`).  Not ``--device``: that is ``listen``'s input device."""
    from .device import DEVICES

    g.add_argument("--compute", choices=DEVICES, default="auto",
                   help="where both models run: auto (default: a GPU when one is found, else the CPU), cpu, or cuda "
                        "(no GPU found: one line, and the CPU)")


def apply_device(args, options) -> None:
    """Resolve ``--compute`` into ``options`` (a PipelineOptions) once, saying a fallback in one line."""
    from .device import resolve

    device, note = resolve(args.compute)
    options.transcribe.device = options.emotion.device = device
    if note:
        print(f"stream-ser: {note}", file=sys.stderr)


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    p = argparse.ArgumentParser(prog="stream-ser", description="Live speech emotion recognition and transcription in the terminal.")
    p.add_argument("--version", action="version", version=f"stream-ser {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    s = sub.add_parser("listen", help="analyse a live input device", description="Analyse a live input device (default: the system's default microphone).")
    s.add_argument("-l", "--list-devices", action="store_true", help="list input devices and exit")
    s.add_argument("-d", "--device", metavar="ID", help="input device: index or a substring of its name")
    s.add_argument("-r", "--samplerate", type=int, metavar="HZ", help="capture rate, 1000-384000 (default: the device's own; resampled to 16 kHz)")
    _add_session_args(s)

    s = sub.add_parser("replay", help="analyse a recording", description="Analyse a recording (WAV, FLAC, OGG, MP3, m4a, Opus, a video file's sound, ...; no ffmpeg needed).")
    s.add_argument("file", help="audio file")
    s.add_argument("--speed", type=float, default=1.0, metavar="X", help="1 = real-time pace (default), 2 = twice as fast, 0 = as fast as possible; 0 or 0.01-1000")
    _add_session_args(s)

    s = sub.add_parser("train", help="train the emotion model on ../shared/data/ser", description="Train the emotion model (speaker split from the manifest).")
    s.add_argument("--arch", choices=("compact", "paper", "head"), default="compact",
                   help="compact (default) or paper: CNNs on the 22 tracks; head: a small dense net for --features whisper")
    s.add_argument("--features", choices=("mfcc", "whisper"), default="mfcc",
                   help="mfcc: ZCR + RMS + 20 MFCC per frame (default); whisper: the bundled tiny.en encoder's summary of each window")
    s.add_argument("--time-mask", type=ranged(0, 108, integer=True), default=20, metavar="N",
                   help="mask up to N frames of each training window (default 20; 0 for --features whisper, one frame)")
    s.add_argument("--feature-mask", type=ranged(0, 768, integer=True), default=3, metavar="N",
                   help="mask up to N feature tracks of each training window (default 3)")
    s.add_argument("--epochs", type=ranged(1, 100000, integer=True), default=None,
                   help="at most this many epochs (default 80; stops after 30 without a better val UA); with --with-val, exactly this many")
    s.add_argument("--resume", action="store_true", help="continue from the last checkpoint in --out")
    s.add_argument("--keep-calm", action="store_true", help="keep RAVDESS 'calm' as an 8th class instead of folding it into neutral")
    s.add_argument("--out", metavar="DIR", help="checkpoint directory (default runs/<arch>)")
    s.add_argument("--export", metavar="DIR", help="when done, ship best.keras into DIR (e.g. models)")
    s.add_argument("--data", metavar="DIR", help="dataset directory with manifest.csv (default ../shared/data/ser)")
    s.add_argument("--variants", metavar="LIST", help="comma-separated training augmentations (default: clean,noise,noise_b,telephone,reverb,pitch,mp3,chained,gain,chain; also speaker, babble, babble_b, talk, talk_b, stretch, opus; noise@vad cuts that copy where the VAD on the copy puts the windows, as the stream would; babble@vad+1 is another draw of that copy, made with the data seed + 1)")
    s.add_argument("--lr", type=ranged(1e-8, 1.0), help="peak learning rate, 1e-8 to 1 (default 1e-3)")
    s.add_argument("--norm", choices=("session", "window"), default="session",
                   help="feature normalisation: running per session/speaker (default) or per window")
    s.add_argument("--prior-windows", type=ranged(0.0, 1e6), default=2.0, metavar="N",
                   help="weight of the training-set prior in a session's statistics, in windows (default 2)")
    s.add_argument("--scale", choices=("session", "prior"), default="session",
                   help="session normalisation divides by the session's std (default) or the training set's")
    s.add_argument("--balanced-sessions", action="store_true",
                   help="train on sessions with each speaker's own emotion mix, not a random share of neutral speech")
    s.add_argument("--warm-up", choices=("log", "uniform"), default="log",
                   help="where in its session a training window falls: often early (log, default) or anywhere (uniform)")
    s.add_argument("--average", type=ranged(0.0, 0.999), default=0.0, metavar="D",
                   help="validate an exponential moving average of the weights over epochs, decay D (e.g. 0.8; default off)")
    s.add_argument("--with-val", action="store_true",
                   help="train on the val split's speakers too, for exactly --epochs epochs (a recipe already chosen on val); "
                        "best.keras is the last epoch's model, --resume needs --with-val again, and evaluate refuses the val speakers")
    s.add_argument("--limit", type=ranged(1, 10**9, integer=True), help="use only the first N clips of each split (smoke tests)")
    s.add_argument("--seed", type=ranged(0, 2**32 - 1, integer=True), default=0)
    g = s.add_argument_group("cross-validation and calm speech (issue 20)")
    g.add_argument("--fold", type=int, choices=range(5), metavar="K",
                   help="train cross-validation fold K (0-4): every RAVDESS actor outside it, exactly --epochs epochs")
    g.add_argument("--all-actors", action="store_true",
                   help="train on all actors (train + val + test splits) for exactly --epochs epochs: the final fit after cross-validation")
    g.add_argument("--neutral", metavar="SPLITS", help="also train on these splits of ../shared/data/neutral (e.g. train, or train,val)")
    g.add_argument("--epoch-windows", type=int, metavar="N", help="train each epoch on a random draw of N augmented windows (default: all)")
    g.add_argument("--calm-weight", type=float, metavar="W",
                   help="with --neutral: the calm corpus weighs W times RAVDESS's neutral windows in all (e.g. 0.5; default: as any neutral window)")

    s = sub.add_parser("export", help="ship trained checkpoints into models/", description="Ship one checkpoint, or several averaged into one model, with its TFLite fast path and labels.")
    s.add_argument("checkpoints", nargs="+", help=".keras checkpoints (e.g. runs/compact/best.keras)")
    s.add_argument("--out", default="models", metavar="DIR")
    s.add_argument("--keep-calm", action="store_true", help="the checkpoints have 8 classes, calm apart from neutral")
    s.add_argument("--neutral-bias", type=finite, default=0.0, metavar="B",
                   help="record neutral log-prior B in labels.json, applied by the stream: a prior for mostly-neutral speech (default 0)")
    s.add_argument("--data", metavar="DIR")

    s = sub.add_parser("evaluate", help="score a model on unseen speakers", description="Score an emotion model on a speaker split, clip by clip.")
    s.add_argument("--split", choices=("val", "test"), default="test")
    s.add_argument("--condition", choices=("clean", "telephone", "noisy", "reverb", "mp3", "all"), default="clean")
    s.add_argument("--model", metavar="PATH", help="a models directory or a .keras checkpoint (default: the bundled models/)")
    s.add_argument("--keep-calm", action="store_true", help="score 8 classes, calm apart from neutral (a model trained with --keep-calm)")
    s.add_argument("--neutral-bias", type=finite, default=None, metavar="B",
                   help="score the model with neutral log-prior B instead of its own (as `listen --neutral-bias`)")
    s.add_argument("--vad-on", choices=("degraded", "clean"), default="degraded",
                   help="cut a degraded condition's windows where the VAD finds speech in the degraded audio, as replay does (default), or in the clean clip")
    s.add_argument("--plot", metavar="PNG", help="save the confusion matrix as a PNG")
    s.add_argument("--speech", action="store_true", help="instead: the label distribution on ../shared/data/speech replayed through the stream")
    s.add_argument("--json", action="store_true", help="print the results as JSON (a list with --condition all)")
    s.add_argument("--data", metavar="DIR")
    g = s.add_argument_group("cross-validation and calm speech (issue 20)")
    g.add_argument("--cv", metavar="RUN", help="score RUN/fold0-4/last.keras (stream-ser train --fold K) on their held-out actors, "
                                                "the calm corpus and ../shared/data/speech; prints the per-fold table "
                                                "(RUN1,RUN2,...: per fold, the mean of the runs' probabilities, e.g. seeds)")
    g.add_argument("--ordinary", action="store_true", help="instead: the label shares of --model on the calm corpus's val and test speakers "
                                                          "and ../shared/data/speech, each speaker one session (fast path)")
    g.add_argument("--write", metavar="JSON", help="with --cv/--ordinary: also write the full results here (e.g. models/runs/NAME.json)")
    _add_batch_commands(sub)
    _add_schema_command(sub)
    _add_serve_command(sub)
    return p


# ---- the event contract (issue 25) ------------------------------------------------

def _add_schema_command(sub) -> None:
    s = sub.add_parser("schema", help="print the JSON Schema of the events",
                       description="Print the JSON Schema (draft 2020-12) that every event of --jsonl follows; "
                                   "status events carry its version as schema_version.")
    s.add_argument("--markdown", action="store_true", help="print the events reference as Markdown tables instead")


def schema_command(args) -> int:
    from . import schema

    sys.stdout.write(schema.markdown() if args.markdown else schema.text())
    return EXIT_OK


# ---- the web page (issue 23) ------------------------------------------------------

def _add_serve_command(sub) -> None:
    s = sub.add_parser("serve", help="a web page: record in the browser or upload, see the live analysis",
                       description="Serve a local web page that records from the browser's microphone or takes an upload, "
                                   "and shows the live analysis (needs stream-ser[serve]).")
    s.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    s.add_argument("--port", type=ranged(0, 65535, integer=True), default=8000, help="port (default 8000; 0: any free port)")
    s.add_argument("--max-sessions", type=ranged(1, 1000, integer=True), default=None, metavar="N",
                   help="analyses running at once (default: what 2 cores sustain in real time, measured: 4 to 5, or 6 with --no-transcript)")
    s.add_argument("--max-upload-mb", type=ranged(0.001, 1e6), default=200.0, metavar="MB", help="largest upload (default 200)")
    _add_model_args(s)
    s.set_defaults(srt=None, vtt=None)


def serve_command(args) -> int:
    from .serve import ServeOptions, serve

    return serve(ServeOptions(host=args.host, port=args.port, max_sessions=args.max_sessions, max_upload_mb=args.max_upload_mb,
                              pipeline=_pipeline_options(args)))


# ---- batch and report (issue 22) ------------------------------------------------

def _add_batch_commands(sub) -> None:
    s = sub.add_parser("batch", help="analyse many recordings into reports and tables",
                       description="Analyse recordings (files, folders, globs) into DIR: calls/<name>.jsonl/.srt/.html, "
                                   "calls.parquet, calls.csv, segments.parquet.  Unchanged recordings are skipped on a rerun.")
    s.add_argument("inputs", nargs="+", metavar="INPUT", help="audio files, folders (searched recursively) or globs")
    s.add_argument("--out", required=True, metavar="DIR", help="output directory")
    s.add_argument("--workers", type=int, metavar="N", help="worker processes (default: the number of cores; with --ray: the cluster's CPUs)")
    s.add_argument("--force", action="store_true", help="redo recordings whose outputs are complete and unchanged")
    s.add_argument("--ray", nargs="?", const="auto", metavar="ADDRESS",
                   help="run on an existing Ray cluster (host:port; 'auto' or none: RAY_ADDRESS or the local one); needs stream-ser[ray]")
    _add_model_args(s)
    s.set_defaults(srt=None, vtt=None)

    s = sub.add_parser("report", help="an HTML (and PNG) report of a session's events",
                       description="Render a session's JSONL events as a self-contained HTML page (no network needed to view it) and optionally a PNG timeline.")
    s.add_argument("events", metavar="EVENTS.jsonl")
    s.add_argument("--out", metavar="HTML", help="the page (default: EVENTS with .html)")
    s.add_argument("--png", metavar="PNG", help="also write the timeline as a PNG (needs matplotlib)")


def batch_command(args) -> int:
    from .batch import BatchOptions, run_batch

    if args.workers is not None and args.workers < 1:
        raise UsageError("--workers must be at least 1")
    opts = BatchOptions(out=args.out, pipeline=_pipeline_options(args), workers=args.workers, force=args.force, ray=args.ray)
    from .ray_engine import make_engine

    try:
        r = run_batch(args.inputs, opts, engine_factory=make_engine)  # a model that does not load: StreamSerError, one line and exit 2
    except OSError as e:  # the output went away or filled up: what was saved is kept
        print(f"stream-ser: cannot write to {args.out}: {e.strerror or e}", file=sys.stderr)
        return EXIT_ERROR
    print(f"batch: {r.total} recording{'s' if r.total != 1 else ''}: {r.analysed} analysed, {r.skipped} unchanged (skipped), {r.failed} failed; "
          f"{r.rows} rows in {os.path.join(args.out, 'calls.parquet')}, calls.csv, segments.parquet", file=sys.stderr)
    if r.interrupted:
        print("stream-ser: interrupted; the tables hold every completed recording", file=sys.stderr)
        return EXIT_INT if r.interrupted == "SIGINT" else EXIT_TERM
    if r.failed:
        print(f"stream-ser: {r.failed} of {r.total} recordings failed (their error is in calls.csv)", file=sys.stderr)
        return EXIT_ERROR
    return EXIT_OK


def report_command(args) -> int:
    from .atomic import write_text
    from .report import load_events, render_html, write_png

    events = load_events(args.events)
    out = args.out or os.path.splitext(args.events)[0] + ".html"
    title = next((e["source"] for e in events if e.get("type") == "status" and e.get("source")), os.path.basename(args.events))
    try:
        page = render_html(events, title)
    except (TypeError, ValueError, KeyError, AttributeError) as e:  # a hand-edited file: a field of the wrong type
        raise UsageError(f"{args.events}: events with a field of the wrong type ({type(e).__name__}: {e})") from None
    try:
        write_text(out, page)
    except OSError as e:
        raise UsageError(f"cannot write {out}: {e.strerror or e}") from None
    if args.png:
        write_png(events, args.png, title=title)
    print(f"report: {out}" + (f", {args.png}" if args.png else ""), file=sys.stderr)
    return EXIT_OK


def _pipeline_options(args):
    from .pipeline import PipelineOptions

    o = PipelineOptions()
    if args.models:
        o.emotion.models_dir = args.models
    if args.neutral_bias is not None:
        o.emotion.neutral_bias = args.neutral_bias
    if args.asr_model:
        o.transcribe.model = args.asr_model
    o.transcript = not args.no_transcript
    if args.no_transcript and (args.srt or args.vtt):
        raise UsageError("--srt and --vtt write the transcript: drop --no-transcript")
    if args.vad_mode is not None:
        o.vad.mode = args.vad_mode
    if args.hop is not None:
        o.window.hop = args.hop
    apply_device(args, o)
    o.check()  # every number in its documented range, before anything runs
    return o


def _outputs(args):
    """Pre-flight of --jsonl/--srt/--vtt (no file is touched until ``open()``)."""
    from .outputs import Output, Outputs, check_outputs

    wanted = [Output(kind, getattr(args, kind)) for kind in ("jsonl", "srt", "vtt")]
    inputs = [args.file] if args.command == "replay" else []
    return Outputs(check_outputs(wanted, inputs, append=args.append), append=args.append, subtitles=args.subtitles)


def run_session(args) -> int:
    """listen / replay: open outputs, load models, stream, print, summarise."""
    from .dashboard import Dashboard
    from .plain import PlainPrinter, print_summary
    from .session import SessionState
    from .sources import FileSource, MicSource

    options = _pipeline_options(args)
    try:
        if args.command == "replay":
            source = FileSource(args.file, speed=args.speed)
        else:
            source = MicSource(args.device, sample_rate=args.samplerate)
    except SourceError as e:
        raise UsageError(str(e)) from None
    outputs = _outputs(args)
    from .pipeline import Pipeline

    if sys.stderr.isatty():
        print("stream-ser: loading models…", file=sys.stderr, end="\r", flush=True)
    pipeline = Pipeline(source, options)

    code = {"value": EXIT_OK}

    def on_signal(signum, frame):
        if code["value"] in (EXIT_INT, EXIT_TERM):  # second signal: give up waiting
            os._exit(code["value"])
        code["value"] = EXIT_INT if signum == signal.SIGINT else EXIT_TERM
        pipeline.stop()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        outputs.open()  # only now (models loaded, Ctrl-C handled): a start-up failure leaves existing files as they were
    except BaseException:
        pipeline.close()
        raise
    files = outputs.paths
    state = SessionState(source.name, source.sample_rate, transcript=options.transcript)
    plain = args.plain or not sys.stdout.isatty()
    view = PlainPrinter(sys.stdout, sys.stderr, on_closed=pipeline.stop) if plain else Dashboard(on_quit=pipeline.stop, state=state)
    error, completed = None, False
    try:
        with pipeline, view:
            for event in pipeline.events():
                state.update(event)  # the dashboard renders the state; the plain view prints events
                if plain:
                    view.update(event)
                if problem := outputs.write(event):
                    error = problem
                    pipeline.stop()
        completed = True
    except (DeviceLost, StageError) as e:
        error = f"{e}; stopping (events so far are saved)"
        code["value"] = EXIT_ERROR
    except SourceError as e:
        error = str(e)
        code["value"] = EXIT_USAGE
    finally:
        outputs.close(keep=completed and code["value"] == EXIT_OK)  # stopped or failed: no empty replacement
    if plain and view.closed and code["value"] == EXIT_OK:
        code["value"] = EXIT_PIPE
    if error and code["value"] == EXIT_OK:
        code["value"] = EXIT_ERROR
    try:
        print_summary(state, files, sys.stderr)
        if error:
            print(f"stream-ser: {error}", file=sys.stderr)
    except BrokenPipeError:  # stderr's reader went away too (`2>&1 | head`): the files are written
        pass
    return code["value"]


def _quit_at_start(signum, frame):
    """Ctrl-C or SIGTERM while a session starts: no file is written yet, so end at
    once (an interrupt inside an import would surface as that import's traceback)."""
    os._exit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    from .outputs import ensure_std_streams

    ensure_std_streams()
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command in ("listen", "replay") and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, _quit_at_start)  # until run_session's own handlers, once the models are loaded
        signal.signal(signal.SIGTERM, _quit_at_start)
    try:
        if args.command == "listen" and args.list_devices:
            from .sources import list_devices

            try:
                print(list_devices())
            except SourceError as e:
                raise UsageError(str(e)) from None
            return EXIT_OK
        if args.command in ("listen", "replay"):
            return run_session(args)
        if args.command == "train":
            from .training.cli import train_command

            return train_command(args)
        if args.command == "export":
            from .training.cli import export_command

            return export_command(args)
        if args.command == "batch":
            return batch_command(args)
        if args.command == "report":
            return report_command(args)
        if args.command == "schema":
            return schema_command(args)
        if args.command == "serve":
            return serve_command(args)
        if args.command == "evaluate":
            from .training.cli import evaluate_command

            return evaluate_command(args)
    except StreamSerError as e:  # refused at start: nothing was analysed
        from .limits import OptionError

        print(f"stream-ser: {e.flag if isinstance(e, OptionError) else e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("stream-ser: interrupted", file=sys.stderr)
        return EXIT_INT
    return EXIT_USAGE


def run() -> None:
    """Console entry point.  After a session every file is closed and flushed;
    exit at once rather than wait for TensorFlow's and CTranslate2's slow
    interpreter teardown (Ctrl-C must end the process within 2 s)."""
    code = main()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (BrokenPipeError, ValueError):  # a reader that went away
            pass
    os._exit(code)


if __name__ == "__main__":
    run()
