// How the page captures sound for Record and Live: music as it is, from a chosen input or from this computer.
//
// Gradio's audio component asks for `getUserMedia({audio: true})`, which turns on the browser's speech processing
// (echo cancellation, noise suppression, automatic gain): made for voices, it pumps and thins music. Gradio has no
// option for this, so this script wraps `getUserMedia` once for the whole page:
//   - every microphone request gets those three switched off, and the input chosen in the recording box's own list
//     (Gradio's list steers only its waveform, not the recorder that streams: one list for both, Gradio's);
//   - after a click on "This computer's sound", it asks `getDisplayMedia` once for a tab's (or the system's) audio,
//     drops the video track the browser insists on, and answers every request of that start with a copy of the
//     shared sound. One click makes two requests (Gradio's waveform, then its recorder): both must get the shared
//     sound, or the recorder records the microphone while the page says "this computer". When every copy has been
//     stopped (Stop, or the browser's "Stop sharing"), the share ends and the next recording is the microphone.
// No build step: app.py puts this file in the page head.
(() => {
  const media = navigator.mediaDevices;
  if (!media || !media.getUserMedia) return; // not a secure context (http://host other than localhost)
  const RAW = { echoCancellation: false, noiseSuppression: false, autoGainControl: false };
  const state = (window.genreCapture = { source: "microphone", stream: null, share: null, copies: 0 });
  const askMicrophone = media.getUserMedia.bind(media);

  async function askComputer() {
    if (!media.getDisplayMedia) {
      throw new DOMException("This browser cannot share its sound; use a loopback input instead.", "NotSupportedError");
    }
    // Chrome only offers sound when video is asked for too; systemAudio: a whole-screen share may include it
    const stream = await media.getDisplayMedia({ video: true, audio: RAW, systemAudio: "include" });
    stream.getVideoTracks().forEach((track) => { track.stop(); stream.removeTrack(track); });
    if (!stream.getAudioTracks().length) {
      setNote("No sound was shared: share again and tick \"Share tab audio\" (or \"Share system audio\").");
      throw new DOMException("No audio track was shared.", "NotAllowedError");
    }
    stream.getAudioTracks()[0].addEventListener("ended", endShare, { once: true }); // "Stop sharing" in the browser
    return stream;
  }

  function endShare() {
    state.share?.then((shared) => shared.getTracks().forEach((track) => track.stop()), () => {});
    state.share = null;
    state.copies = 0;
    state.source = "microphone";
  }

  // A copy of the shared sound per request: each user stops its own copy, and the share ends with the last one.
  async function copyOfShare() {
    state.share ??= askComputer();
    let shared;
    try {
      shared = await state.share;
    } catch (error) {
      endShare(); // refused or cancelled: the next start asks again
      throw error;
    }
    const copy = new MediaStream(shared.getAudioTracks().map((track) => {
      const clone = track.clone();
      const stop = clone.stop.bind(clone);
      clone.stop = () => {
        if (clone.readyState === "live" && --state.copies === 0) endShare();
        stop();
      };
      state.copies += 1;
      return clone;
    }));
    return copy;
  }

  media.getUserMedia = async (constraints = {}) => {
    if (!constraints.audio || constraints.video) return askMicrophone(constraints);
    let stream;
    if (state.source === "computer") {
      stream = await copyOfShare();
    } else {
      const audio = { ...(constraints.audio === true ? {} : constraints.audio), ...RAW };
      const box = document.body.classList.contains("live-view") ? "#live-audio" : "#clip";
      const chosen = document.querySelector(`${box} select.mic-select`)?.value;
      if (chosen) audio.deviceId = { exact: chosen };
      stream = await askMicrophone({ ...constraints, audio });
    }
    state.stream = stream; // the tests read the live track's settings from here
    return stream;
  };

  function setNote(text) {
    const note = document.querySelector("#capture-note .capture-note");
    if (note) note.textContent = text;
  }

  // Which source the next recording uses: set by the source buttons (see live_view.py), which then press record.
  // Another source while listening: Stop first, then Record once the box has redrawn (still within the few seconds
  // of the user's click that the browser allows the capture prompt).
  state.start = (source, tries = 3) => {
    const stop = document.querySelector("#live-audio button.stop-button");
    stop?.click();
    const since = Date.now();
    const press = () => {
      const record = document.querySelector("#live-audio button.record-button");
      if (record) {
        state.source = source; // set here: the stopped share may have reset it
        state.pressed = { source, tries, at: Date.now() };
        record.click();
      } else if (Date.now() - since < 3000) {
        setTimeout(press, 100);
      }
    };
    if (stop) setTimeout(press, 1000); // let the stopped stream close on the server first
    else press();
  };

  // Gradio's streaming recorder loads its WAV encoder each time the box is drawn; Record pressed before it has
  // loaded fails with "... is not a constructor" and leaves a box that shows Stop and records nothing. Start again.
  window.addEventListener("unhandledrejection", (event) => {
    const pressed = state.pressed;
    if (!pressed || Date.now() - pressed.at > 5000 || !/is not a constructor/.test(event.reason?.message)) return;
    event.preventDefault();
    console.warn("Live: the recorder was not ready; starting again");
    state.pressed = null;
    if (pressed.tries > 1) setTimeout(() => state.start(pressed.source, pressed.tries - 1), 300);
  });

  // The label of what the next recording captures ("this computer" or "the microphone"), for the Live view's status:
  // read when a recording starts, whichever button started it.
  state.label = () => (state.source === "computer" ? "this computer" : "the microphone");

  state.supportsComputerSound = () => Boolean(media.getDisplayMedia) && /Chrome|Chromium|Edg\//.test(navigator.userAgent);

  // Gradio renders the page after this script runs: write the browser note when it appears.
  const observer = new MutationObserver(() => {
    const note = document.querySelector("#capture-note .capture-note");
    if (note && !note.dataset.checked) {
      note.dataset.checked = "1";
      if (!state.supportsComputerSound()) {
        setNote("This browser cannot share a tab's sound: use a loopback input as the microphone (see below).");
      }
    }
  });
  document.addEventListener("DOMContentLoaded", () => observer.observe(document.body, { childList: true, subtree: true }));
})();
