// A drop zone that sends a file to the console's server in pieces (see server.py), straight to disk.
// Resumes after a broken connection, shows bytes, speed and time left, and can be cancelled.
export default function (component) {
  const { parentElement, setStateValue, data } = component;
  const zone = parentElement.querySelector(".smc-drop");
  const input = parentElement.querySelector("input[type=file]");
  const bar = parentElement.querySelector(".smc-bar > div");
  const status = parentElement.querySelector(".smc-status");
  const cancelButton = parentElement.querySelector(".smc-cancel");
  const base = data.endpoint;
  let job = null;

  const size = (n) => (n >= 1e9 ? `${(n / 1e9).toFixed(2)} GB` : `${(n / 1e6).toFixed(1)} MB`);
  const sleep = (ms) => new Promise((done) => setTimeout(done, ms));
  const say = (text, fraction) => {
    status.textContent = text;
    if (fraction !== undefined) bar.style.width = `${Math.round(fraction * 100)}%`;
  };

  async function received(id) {
    const answer = await fetch(`${base}/${id}`);
    if (!answer.ok) throw new Error((await answer.json()).error);
    return (await answer.json()).received;
  }

  async function send(file) {
    if (job) return;
    if (!file.name.toLowerCase().endsWith(".zip")) {
      say(`${file.name} is not a .zip file`);
      return;
    }
    job = { cancelled: false, controller: null, id: null };
    const mine = job;
    cancelButton.disabled = false;
    try {
      const announced = await fetch(base, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ filename: file.name, size: file.size }),
      });
      const answer = await announced.json();
      if (!announced.ok) throw new Error(answer.error);
      mine.id = answer.id;
      let offset = 0;
      let failures = 0;
      const started = performance.now();
      while (offset < file.size && !mine.cancelled) {
        mine.controller = new AbortController();
        try {
          const put = await fetch(`${base}/${mine.id}?offset=${offset}`, {
            method: "PUT",
            body: file.slice(offset, offset + data.piece_bytes),
            signal: mine.controller.signal,
          });
          const reply = await put.json();
          if (put.status === 409) { offset = reply.received; continue; }
          if (!put.ok) throw new Error(reply.error);
          offset = reply.received;
          failures = 0;
        } catch (error) {
          if (mine.cancelled) break;
          if (++failures > data.retries) throw error;
          say(`Connection broken (${error.message}); resuming…`);
          await sleep(500 * failures);
          offset = await received(mine.id);
        }
        const seconds = (performance.now() - started) / 1000;
        const rate = offset / Math.max(seconds, 0.001);
        const left = rate > 0 ? Math.round((file.size - offset) / rate) : 0;
        say(`${file.name}: ${size(offset)} of ${size(file.size)} · ${size(rate)}/s · ${left} s left`,
            offset / file.size);
      }
      if (!mine.cancelled) {
        say(`${file.name}: ${size(file.size)} received`, 1);
        setStateValue("upload", { id: mine.id, filename: file.name, size: file.size });
      }
    } catch (error) {
      if (mine.id) await fetch(`${base}/${mine.id}`, { method: "DELETE" });
      say(`Upload failed: ${error.message}. Nothing was kept.`, 0);
    } finally {
      cancelButton.disabled = true;
      job = null;
    }
  }

  cancelButton.onclick = async () => {
    if (!job) return;
    const mine = job;
    mine.cancelled = true;
    if (mine.controller) mine.controller.abort();
    if (mine.id) await fetch(`${base}/${mine.id}`, { method: "DELETE" });
    say("Cancelled: nothing was kept.", 0);
  };
  input.onchange = () => input.files.length && send(input.files[0]);
  zone.ondragover = (event) => { event.preventDefault(); zone.classList.add("smc-over"); };
  zone.ondragleave = () => zone.classList.remove("smc-over");
  zone.ondrop = (event) => {
    event.preventDefault();
    zone.classList.remove("smc-over");
    if (event.dataTransfer.files.length) send(event.dataTransfer.files[0]);
  };
}
