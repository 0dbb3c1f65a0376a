// The drawing page. Everything it shows comes from the public API: POST /v1/compare with the
// image and include_input=true (the 28x28 model input comes back in the answer).
"use strict";

const BACKENDS = ["tfserving", "torchserve"];
const pad = document.getElementById("pad");
const ctx = pad.getContext("2d");
const statusEl = document.getElementById("status");
const agreementEl = document.getElementById("agreement");
const predictBtn = document.getElementById("predict");
let drawn = false;
let drawing = false;
let chosenFile = null; // the last image chosen or dropped: Predict sends it again until something is drawn
let last = null;

function resetPad() {
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, pad.width, pad.height);
  ctx.strokeStyle = "#000";
  ctx.lineWidth = 18;
  ctx.lineCap = "round";
  ctx.lineJoin = "round";
  drawn = false;
}

function point(event) {
  const r = pad.getBoundingClientRect();
  return { x: (event.clientX - r.left) * (pad.width / r.width), y: (event.clientY - r.top) * (pad.height / r.height) };
}

pad.addEventListener("pointerdown", (e) => {
  drawing = true;
  last = point(e);
  pad.setPointerCapture(e.pointerId);
  ctx.beginPath();
  ctx.arc(last.x, last.y, ctx.lineWidth / 2, 0, Math.PI * 2);
  ctx.fillStyle = "#000";
  ctx.fill();
  drawn = true;
  chosenFile = null;
});
pad.addEventListener("pointermove", (e) => {
  if (!drawing) return;
  const p = point(e);
  ctx.beginPath();
  ctx.moveTo(last.x, last.y);
  ctx.lineTo(p.x, p.y);
  ctx.stroke();
  last = p;
  drawn = true;
});
["pointerup", "pointercancel", "pointerleave"].forEach((t) => pad.addEventListener(t, () => { drawing = false; }));

function setStatus(text, isError = false) {
  statusEl.textContent = text;
  statusEl.classList.toggle("error", isError);
}

function clearAll() {
  resetPad();
  chosenFile = null;
  document.getElementById("file").value = "";
  setStatus("Draw a digit, then press Predict.");
  agreementEl.textContent = "";
  agreementEl.className = "";
  BACKENDS.forEach((b) => renderCard(b, null));
  const mi = document.getElementById("model-input").getContext("2d");
  mi.clearRect(0, 0, 112, 112);
  pad.focus();
}

function renderCard(backend, result) {
  const card = document.getElementById(`result-${backend}`);
  const digit = card.querySelector(".digit");
  const meta = card.querySelector(".meta");
  const bars = card.querySelector(".bars");
  const error = card.querySelector(".error");
  bars.replaceChildren();
  error.hidden = true;
  if (!result) { digit.textContent = "–"; meta.textContent = ""; return; }
  if (result.error) {
    digit.textContent = "–";
    meta.textContent = "";
    error.textContent = `${card.querySelector("h3").textContent} did not answer: ${result.error.message}`;
    error.hidden = false;
    return;
  }
  const probs = result.predictions[0];
  const label = result.labels[0];
  digit.textContent = String(label);
  const uncertain = Boolean(result.uncertain && result.uncertain[0]);
  card.classList.toggle("uncertain", uncertain);
  meta.textContent = `model v${result.model_version} · ${result.latency_ms.toFixed(1)} ms` +
    (uncertain ? " · uncertain: this may not be a digit, or a hard one to read" : "");
  probs.forEach((p, i) => {
    const li = document.createElement("li");
    if (i === label) li.className = "top";
    const pct = (100 * p).toFixed(1);
    li.setAttribute("aria-label", `digit ${i}: ${pct} percent`);
    li.innerHTML = `<span>${i}</span><span class="track"><span class="fill" style="width:${pct}%"></span></span>` +
      `<span class="pct">${pct}%</span>`;
    bars.appendChild(li);
  });
}

function renderModelInput(image) {
  const mi = document.getElementById("model-input").getContext("2d");
  const data = mi.createImageData(28, 28);
  image.flat().forEach((v, i) => {
    const g = Math.round(v * 255);
    data.data.set([g, g, g, 255], i * 4);
  });
  const tmp = document.createElement("canvas");
  tmp.width = tmp.height = 28;
  tmp.getContext("2d").putImageData(data, 0, 0);
  mi.imageSmoothingEnabled = false;
  mi.drawImage(tmp, 0, 0, 112, 112);
}

async function send(blob, name) {
  const form = new FormData();
  form.append("file", blob, name);
  const headers = {};
  const key = document.getElementById("api-key").value.trim();
  if (key) headers["X-API-Key"] = key;
  predictBtn.disabled = true;
  setStatus("Asking both servers …");
  try {
    const r = await fetch(`/v1/compare?backends=${BACKENDS.join(",")}&include_input=true`,
                          { method: "POST", body: form, headers });
    const body = await r.json().catch(() => ({}));
    if (r.status === 401) {
      document.getElementById("key-box").open = true;
      setStatus("This gateway needs an API key: enter it under “API key”.", true);
      return;
    }
    if (!r.ok) {
      const results = body.error && body.error.results;
      if (results) BACKENDS.forEach((b) => renderCard(b, results[b]));
      setStatus(body.error ? body.error.message : `The gateway answered HTTP ${r.status}.`, true);
      return;
    }
    BACKENDS.forEach((b) => renderCard(b, body.results[b]));
    if (body.input) renderModelInput(body.input);
    const down = BACKENDS.filter((b) => body.results[b].error);
    setStatus(down.length ? `Answered by ${BACKENDS.filter((b) => !down.includes(b)).join(" and ")}; ` +
                            `${down.join(" and ")} is down.` : "Both servers answered.", down.length > 0);
    if (body.labels_agree === null || body.labels_agree === undefined) {
      agreementEl.textContent = "";
      agreementEl.className = "";
    } else {
      agreementEl.textContent = body.labels_agree ? "✔ Both servers agree." : "✘ The servers disagree.";
      agreementEl.className = body.labels_agree ? "agree" : "disagree";
    }
  } catch (err) {
    setStatus(`Could not reach the gateway: ${err.message}`, true);
  } finally {
    predictBtn.disabled = false;
  }
}

function predictDrawing() {
  if (!drawn && chosenFile) { send(chosenFile, chosenFile.name); return; }
  if (!drawn) { setStatus("The drawing is empty: draw a digit, or choose an image file.", true); pad.focus(); return; }
  pad.toBlob((blob) => send(blob, "drawing.png"), "image/png");
}

function sendFile(f) {
  resetPad(); // the result is the file's, not an earlier drawing's
  chosenFile = f;
  send(f, f.name);
}

predictBtn.addEventListener("click", predictDrawing);
document.getElementById("clear").addEventListener("click", clearAll);
document.getElementById("file").addEventListener("change", (e) => {
  const f = e.target.files[0];
  if (f) sendFile(f);
});
pad.addEventListener("keydown", (e) => {
  if (e.key === "Enter") { e.preventDefault(); predictDrawing(); }
  if (e.key === "Escape" || e.key === "Delete" || e.key === "Backspace") { e.preventDefault(); clearAll(); }
});
document.addEventListener("keydown", (e) => {
  if (e.target === pad || e.target.tagName === "INPUT") return;
  if (e.key === "Enter" && e.target.tagName !== "BUTTON") predictDrawing();
  if (e.key === "Escape") clearAll();
});
pad.addEventListener("dragover", (e) => { e.preventDefault(); pad.classList.add("dragover"); });
pad.addEventListener("dragleave", () => pad.classList.remove("dragover"));
pad.addEventListener("drop", (e) => {
  e.preventDefault();
  pad.classList.remove("dragover");
  const f = e.dataTransfer.files[0];
  if (f) sendFile(f);
});

resetPad();
BACKENDS.forEach((b) => renderCard(b, null));
