// stream-ser's page: one WebSocket per tab (the server's session), the
// microphone through an AudioWorklet, uploads by POST, and a view of the
// events (the same events as the JSONL).  window.streamSer exposes the state
// for tests and bench/serve.py.
"use strict";

const $ = (id) => document.getElementById(id);
const S = window.streamSer = {
  session: null, labels: [], colours: {}, transcript: true, uncertainBelow: 0.2,
  events: 0, emotions: [], finals: [], partial: null, status: null,
  displayLatencies: [], emotionLatencies: [], transcriptLatencies: [],
  running: null, ended: 0, lastEnd: null, messages: [],
};
let ws = null, mic = null, plotted = false, timelineDue = false;

function say(text, kind) {
  const m = $("message");
  m.textContent = text;
  m.className = kind || "";
  m.hidden = !text;
  if (text) S.messages.push(text);
}

function median(xs) {
  if (!xs.length) return NaN;
  const s = xs.slice(-50).sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

function ms(x) { return Number.isFinite(x) ? `${Math.round(x)} ms` : "–"; }

function textOn(hex) { // black or white letters on a label's colour
  const n = parseInt(hex.slice(1), 16), r = n >> 16, g = (n >> 8) & 255, b = n & 255;
  return 0.299 * r + 0.587 * g + 0.114 * b > 140 ? "#111" : "#fff";
}

function clock(s) {
  s = Math.max(0, Math.floor(s));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}

function setButtons() {
  const idle = ws && ws.readyState === 1 && !S.running;
  $("record").disabled = !idle || !navigator.mediaDevices;
  $("analyse").disabled = !idle || !$("file").files.length;
  $("stop").disabled = !S.running;
}

// ---- the view ----------------------------------------------------------------

function reset() {
  Object.assign(S, { events: 0, emotions: [], finals: [], partial: null, status: null,
                     displayLatencies: [], emotionLatencies: [], transcriptLatencies: [] });
  $("transcript").replaceChildren();
  $("partial").textContent = "";
  $("badge").textContent = "–";
  $("badge").style.background = "#ddd";
  $("badge").style.color = "#222";
  $("warnings").textContent = "";
  $("downloads").hidden = true;
  for (const id of ["h-audio", "h-level", "h-elat", "h-tlat", "h-dropped", "h-cpu"]) $(id).textContent = "–";
  drawBars(null);
  drawTimeline();
}

function drawBars(ev) {
  const labels = S.labels;
  const probs = labels.map((k) => (ev ? ev.probs[k] || 0 : 0));
  Plotly.react("bars", [{
    type: "bar", orientation: "h", x: probs, y: labels, marker: { color: labels.map((k) => S.colours[k]) },
    hovertemplate: "%{y} %{x:.2f}<extra></extra>",
  }], {
    margin: { l: 70, r: 10, t: 4, b: 24 }, xaxis: { range: [0, 1], fixedrange: true },
    yaxis: { autorange: "reversed", fixedrange: true }, bargap: 0.25,
    paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "rgba(0,0,0,0)",
  }, { displayModeBar: false, responsive: true });
}

function drawTimeline() {
  timelineDue = false;
  const xs = S.emotions.map((e) => (e.start + e.end) / 2);
  const traces = S.labels.map((k) => ({
    type: "scatter", mode: "lines", stackgroup: "p", name: k, x: xs, y: S.emotions.map((e) => e.probs[k] || 0),
    line: { width: 0.5, color: S.colours[k] }, fillcolor: S.colours[k],
    hovertemplate: `${k} %{y:.2f} at %{x:.1f} s<extra></extra>`,
  }));
  const end = Math.max(10, S.status ? S.status.end : 0, ...S.emotions.map((e) => e.end));
  Plotly.react("timeline", traces, {
    margin: { l: 45, r: 10, t: 4, b: 36 }, showlegend: true,
    legend: { orientation: "h", y: -0.25, font: { size: 11 } },
    xaxis: { range: [0, end], title: { text: "audio time (s)", standoff: 4 } },
    yaxis: { range: [0, 1], title: { text: "probability" } },
    paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "rgba(0,0,0,0)",
  }, { displayModeBar: false, responsive: true });
  plotted = true;
}

function laterTimeline() { // at most ~3 redraws a second: the timeline grows, the badge must not wait
  if (!timelineDue) { timelineDue = true; setTimeout(drawTimeline, 300); }
}

function onEmotion(ev) {
  S.emotions.push(ev);
  S.emotionLatencies.push(ev.latency_ms);
  const uncertain = ev.confidence < S.uncertainBelow;
  const label = uncertain ? "?" : ev.label;
  const b = $("badge");
  b.textContent = `${label} ${ev.confidence.toFixed(2)}`;
  b.style.background = S.colours[label] || "#ddd";
  b.style.color = textOn(S.colours[label] || "#dddddd");
  b.dataset.label = ev.label;
  drawBars(ev);
  // on screen: the frame after the badge and bars changed, by the page's clock
  requestAnimationFrame(() => S.displayLatencies.push(Date.now() - ev.emitted_at * 1000));
  laterTimeline();
}

function onTranscript(ev) {
  if (ev.final) {
    S.partial = null;
    $("partial").textContent = "";
    const text = (ev.text || "").trim();
    if (!text) return;
    S.finals.push(ev);
    S.transcriptLatencies.push(ev.latency_ms);
    const li = document.createElement("li");
    const t = document.createElement("span");
    t.className = "t";
    t.textContent = clock(ev.start);
    li.append(t);
    if (ev.emotion) {
      const tag = document.createElement("span");
      tag.className = "tag";
      const c = S.colours[ev.emotion.label] || "#999";
      tag.style.background = c;
      tag.style.color = textOn(c);
      tag.textContent = `${ev.emotion.label} ${ev.emotion.confidence.toFixed(2)}`;
      li.style.borderLeftColor = c;
      li.append(tag);
    }
    const words = document.createElement("span");
    words.className = "text";
    words.textContent = text;
    li.append(words);
    const list = $("transcript");
    list.append(li);
    list.scrollTop = list.scrollHeight; // the list scrolls, not the page
  } else {
    S.partial = ev;
    $("partial").textContent = ev.text || "";
  }
}

function onStatus(ev) {
  S.status = ev;
  $("h-audio").textContent = `${ev.end.toFixed(1)} s`;
  $("h-level").textContent = ev.level_dbfs === null ? "silence" : `${ev.level_dbfs.toFixed(0)} dBFS${ev.in_speech ? " · speech" : ""}`;
  $("h-dropped").textContent = `${ev.dropped_samples} samples, ${ev.dropped_windows} windows` +
    (ev.skipped_audio_s ? `, transcript skipped ${ev.skipped_audio_s} s` : "");
  $("h-cpu").textContent = Object.entries(ev.compute_ratio).map(([k, v]) => `${k} ${v.toFixed(2)}`).join(", ");
  $("warnings").textContent = (ev.warnings || []).join("; ");
}

function onEvent(ev) {
  S.events++;
  if (ev.type === "emotion") onEmotion(ev);
  else if (ev.type === "transcript") onTranscript(ev);
  else if (ev.type === "status") onStatus(ev);
  $("h-elat").textContent = ms(median(S.emotionLatencies));
  $("h-tlat").textContent = S.transcript ? ms(median(S.transcriptLatencies)) : "off";
  $("h-dlat").textContent = ms(median(S.displayLatencies));
}

// ---- the connection ----------------------------------------------------------

function connect() {
  ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`);
  ws.onopen = () => { $("conn").textContent = "connected"; };
  ws.onclose = (e) => {
    $("conn").textContent = "disconnected: reload the page";
    stopMic();
    S.running = null;
    setButtons();
  };
  ws.onmessage = (m) => {
    const msg = JSON.parse(m.data);
    switch (msg.type) {
      case "hello":
        Object.assign(S, { session: msg.session, labels: msg.labels, colours: msg.colours, transcript: msg.transcript,
                           uncertainBelow: msg.uncertain_below });
        $("conn").textContent = `connected · at most ${msg.max_sessions} analyses at once · uploads up to ${msg.max_upload_mb} MB`;
        reset();
        break;
      case "started":
        S.running = msg.kind;
        say("");
        if (msg.kind === "upload") { $("progress").hidden = false; $("progress").value = 0; }
        break;
      case "event": onEvent(msg.event); break;
      case "progress":
        $("progress").hidden = false;
        $("progress").value = msg.total ? msg.done / msg.total : 0;
        break;
      case "end":
        S.running = null;
        S.ended++;
        S.lastEnd = msg;
        stopMic();
        if (msg.kind === "upload" && !msg.error) $("progress").value = 1;
        if (msg.error) say(msg.error);
        else if (msg.refused) say(`${msg.refused} event(s) held NaN or Infinity: left out of the view and the downloads`);
        if (plotted) drawTimeline();
        if (msg.downloads && msg.downloads.jsonl) {
          for (const k of ["jsonl", "srt", "html"]) $(`dl-${k}`).href = msg.downloads[k];
          $("downloads").hidden = false;
        }
        break;
      case "busy": stopMic(); say(msg.message, "busy"); break;
      case "error": stopMic(); say(msg.message); break;
    }
    setButtons();
  };
}

function send(obj) { if (ws && ws.readyState === 1) ws.send(JSON.stringify(obj)); }

async function record() {
  say("");
  reset();
  try {
    const stream = await navigator.mediaDevices.getUserMedia({
      audio: { channelCount: 1, echoCancellation: false, noiseSuppression: false, autoGainControl: false } });
    const ctx = new AudioContext();
    await ctx.audioWorklet.addModule("/static/worklet.js");
    const node = new AudioWorkletNode(ctx, "pcm-sender");
    const mute = ctx.createGain();
    mute.gain.value = 0; // the graph pulls the worklet through the destination; nothing is heard
    ctx.createMediaStreamSource(stream).connect(node).connect(mute).connect(ctx.destination);
    node.port.onmessage = (e) => { if (S.running === "record" && ws.readyState === 1) ws.send(e.data); };
    mic = { stream, ctx };
    send({ cmd: "record", rate: ctx.sampleRate });
  } catch (e) {
    stopMic();
    say(`cannot record: ${e.message || e}` + (window.isSecureContext ? "" : " (browsers allow the microphone only on https or localhost)"));
  }
}

function stopMic() {
  if (!mic) return;
  for (const t of mic.stream.getTracks()) t.stop();
  mic.ctx.close();
  mic = null;
}

async function analyse() {
  const file = $("file").files[0];
  if (!file) return;
  say("");
  reset();
  $("progress").hidden = false;
  $("progress").value = 0;
  $("analyse").disabled = true;
  try {
    const r = await fetch(`/upload/${S.session}`, { method: "POST", body: file,
                                                    headers: { "X-File-Name": encodeURIComponent(file.name) } });
    if (!r.ok) {
      say((await r.text()).split("\n")[0] || `upload failed (${r.status})`);
      $("progress").hidden = true;
      setButtons();
      return;
    }
  } catch (e) {
    say(`upload failed: ${e.message || e}`);
    setButtons();
    return;
  }
  send({ cmd: "upload", speed: Number($("speed").value) });
}

$("record").onclick = record;
$("stop").onclick = () => { send({ cmd: "stop" }); stopMic(); };
$("analyse").onclick = analyse;
$("file").onchange = setButtons;
connect();
