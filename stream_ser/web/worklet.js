// The microphone's samples as 16-bit PCM, ~43 ms a message, posted to the page
// (which sends them over the WebSocket).  Runs on the browser's audio thread.
class PcmSender extends AudioWorkletProcessor {
  constructor() {
    super();
    this.block = new Int16Array(2048);
    this.n = 0;
  }

  process(inputs) {
    const channels = inputs[0];
    if (channels && channels.length) {
      const x = channels[0];
      for (let i = 0; i < x.length; i++) {
        let v = x[i];
        if (channels.length > 1) { // mix down
          v = 0;
          for (const c of channels) v += c[i];
          v /= channels.length;
        }
        this.block[this.n++] = Math.max(-32768, Math.min(32767, Math.round(v * 32768)));
        if (this.n === this.block.length) {
          this.port.postMessage(this.block.buffer, [this.block.buffer]);
          this.block = new Int16Array(2048);
          this.n = 0;
        }
      }
    }
    return true;
  }
}

registerProcessor("pcm-sender", PcmSender);
