// The impasto page: builds its settings form from GET /api/settings, uploads a job and
// follows it through the server-sent event stream. No framework, no build step.
"use strict";

// Shown up front; everything else editable goes under "More settings".
const MAIN = ["size", "strength", "iterations", "style_weight", "content_weight",
  "preserve_colors", "optimizer", "initial", "tv_weight", "style_scales", "seed"];
// Set by the style sliders rather than typed in.
const FROM_SLIDERS = ["style_blend_weights"];
const LABELS = {
  size: "Size (px)", strength: "Strength (how much painting)", iterations: "Iterations",
  style_weight: "Style weight",
  content_weight: "Content weight", preserve_colors: "Keep the photo's colours",
  optimizer: "Optimiser", initial: "Start from", tv_weight: "Smoothness weight",
  style_scales: "Style scale", seed: "Seed",
};

const $ = (id) => document.getElementById(id);
const state = {
  schema: null, content: null, styles: [], job: null, source: null, shownPreview: 0, previewToken: 0,
};
document.body.dataset.events = "0";

function label(field) {
  if (LABELS[field.name]) return LABELS[field.name];
  const text = field.name.replace(/_/g, " ");
  return text[0].toUpperCase() + text.slice(1);
}

function showDefault(value) {
  if (value === null || value === undefined) return "";
  return Array.isArray(value) ? value.join(" ") : String(value);
}

// --- the settings form ---------------------------------------------------------------
function buildField(field) {
  const wrap = document.createElement("label");
  wrap.className = "field";
  const title = document.createElement("span");
  title.textContent = label(field);
  let input;
  if (field.type === "boolean") {
    wrap.classList.add("check", "wide");
    input = document.createElement("input");
    input.type = "checkbox";
    input.checked = Boolean(field.default);
    wrap.append(input, title);
  } else {
    if (field.choices) {
      input = document.createElement("select");
      for (const choice of field.choices) input.add(new Option(choice, choice));
      input.value = field.default;
    } else if (field.array) {
      input = document.createElement("input");
      input.type = "text";
      input.value = showDefault(field.default);
      wrap.classList.add("wide");
    } else if (field.type === "integer" || field.type === "number") {
      input = document.createElement("input");
      input.type = "number";
      input.step = field.type === "integer" ? "1" : "any";
      if (field.maximum !== null) input.max = field.maximum;
      input.value = showDefault(field.default);
      if (field.nullable) input.placeholder = "auto";
    } else {
      input = document.createElement("input");
      input.type = "text";
      input.value = showDefault(field.default);
    }
    wrap.append(title, input);
  }
  input.name = field.name;
  input.id = "setting-" + field.name;
  input.dataset.field = field.name;
  const help = document.createElement("small");
  help.textContent = field.help;
  wrap.title = field.help;
  if (field.type !== "boolean") wrap.append(help);
  return wrap;
}

function buildForm(schema) {
  const byName = Object.fromEntries(schema.fields.map((f) => [f.name, f]));
  for (const name of MAIN) if (byName[name]) $("main-settings").append(buildField(byName[name]));
  for (const field of schema.fields) {
    if (!field.editable || MAIN.includes(field.name) || FROM_SLIDERS.includes(field.name)) continue;
    $("advanced-settings").append(buildField(field));
  }
  // Video settings: shown (and sent) only while the content is a video.
  const video = document.createElement("fieldset");
  video.id = "video-settings";
  video.className = "grid wide";
  video.hidden = true;
  const legend = document.createElement("legend");
  legend.textContent = "Video";
  video.append(legend);
  for (const field of schema.video_fields || []) if (field.editable) video.append(buildField(field));
  $("main-settings").after(video);
  const l = schema.limits;
  $("limits").textContent = `Limits: ${l.max_size} px, ${l.max_iterations} iterations, ` +
    `${Math.round(l.max_upload_bytes / 1048576)} MiB per image, ${l.max_styles} styles`;
}

function parseValue(field, input) {
  if (field.type === "boolean") return input.checked;
  const raw = input.value.trim();
  if (raw === "") return field.nullable ? null : field.default;
  const one = (text) => (field.type === "integer" || field.type === "number" ? Number(text) : text);
  if (field.array) return raw.split(/[\s,]+/).filter(Boolean).map(one);
  return one(raw);
}

// Only what differs from the defaults is sent, so the server's defaults stay in charge.
function collectSettings() {
  const settings = {};
  const video = state.content && state.content.video ? state.schema.video_fields || [] : [];
  for (const field of [...state.schema.fields, ...video]) {
    const input = $("setting-" + field.name);
    if (!input) continue;
    const value = parseValue(field, input);
    if (JSON.stringify(value) !== JSON.stringify(field.default)) settings[field.name] = value;
  }
  if (state.styles.length > 1) settings.style_blend_weights = state.styles.map((s) => s.weight);
  return settings;
}

// --- checking a file before it is sent ----------------------------------------------------
// TIFF is accepted by the server but not drawn by browsers: told by its first bytes.
async function isTiff(file) {
  const head = new Uint8Array(await file.slice(0, 4).arrayBuffer());
  const text = String.fromCharCode(...head);
  return text === "II*\u0000" || text === "MM\u0000*";
}

// Whether the browser can draw the file; a TIFF cannot be drawn but is still an image.
// Resolves to "image", "tiff" or null (not an image).
async function imageKind(file) {
  try {
    const bitmap = await createImageBitmap(file);
    bitmap.close();
    return "image";
  } catch (err) {
    return (await isTiff(file).catch(() => false)) ? "tiff" : null;
  }
}

// A video the browser can play tells its duration in loadedmetadata; one it cannot play
// (an MKV in some browsers, say) is still sent when its type says video: FFmpeg may read it.
function videoKind(file) {
  return new Promise((resolve) => {
    const probe = document.createElement("video");
    const url = URL.createObjectURL(file);
    const done = (kind) => { URL.revokeObjectURL(url); resolve(kind); };
    probe.preload = "metadata";
    probe.onloadedmetadata = () => done(probe.duration > 0 || probe.videoWidth ? "video" : null);
    probe.onerror = () => done(file.type.startsWith("video/") ? "video" : null);
    probe.src = url;
  });
}

async function checked(file, allowVideo = false) {
  const isVideo = allowVideo && file.type.startsWith("video/");
  if (isVideo) {
    const max = state.schema ? state.schema.limits.max_video_bytes : Infinity;
    if (file.size > max) {
      showError(`${file.name} is larger than this server accepts (${Math.round(max / 1048576)} MiB).`);
      return null;
    }
    const kind = await videoKind(file);
    if (!kind) showError(`${file.name} is not a video this page can read.`);
    return kind;
  }
  if (tooBig(file)) return null;
  const kind = await imageKind(file);
  if (!kind) showError(`${file.name} is not an image this page can read (PNG, JPEG, WebP, GIF, BMP or TIFF).`);
  return kind;
}

// --- choosing images -------------------------------------------------------------------
function tooBig(file) {
  const max = state.schema ? state.schema.limits.max_upload_bytes : Infinity;
  if (file.size > max) {
    showError(`${file.name} is larger than this server accepts (${Math.round(max / 1048576)} MiB).`);
    return true;
  }
  return false;
}

async function setContent(file) {
  if (!file) return;
  showError("");
  const kind = await checked(file, true);
  if (!kind) return;
  if (state.content) URL.revokeObjectURL(state.content.url);
  state.content = {
    file, url: URL.createObjectURL(file), drawable: kind === "image", video: kind === "video",
  };
  $("content-thumb").src = state.content.drawable ? state.content.url : "";
  $("content-thumb").hidden = !state.content.drawable;
  $("content-hint").hidden = state.content.drawable;
  if (state.content.video) $("content-hint").textContent = `${file.name} (video)`;
  else if (!state.content.drawable) $("content-hint").textContent = `${file.name} (no preview for TIFF)`;
  if ($("video-settings")) $("video-settings").hidden = !state.content.video;
  if (!running()) showPreview(state.content.drawable ? state.content.url : null);
  refresh();
}

async function addStyles(files) {
  showError("");
  const max = state.schema ? state.schema.limits.max_styles : 4;
  for (const file of files) {
    if (state.styles.length >= max) {
      showError(`At most ${max} style images.`);
      break;
    }
    const kind = await checked(file);
    if (kind) state.styles.push({ file, url: URL.createObjectURL(file), weight: 1, drawable: kind === "image" });
  }
  renderStyles();
}

function blendText(style, total) {
  if (state.styles.length < 2) return style.file.name;
  const share = total > 0 ? Math.round((100 * style.weight) / total) : 0;
  return `${style.file.name} · ${share}%`;
}

function renderStyles() {
  const list = $("styles-list");
  list.replaceChildren();
  const total = state.styles.reduce((sum, s) => sum + s.weight, 0);
  state.styles.forEach((style, i) => {
    const item = document.createElement("li");
    const img = document.createElement("img");
    img.src = style.drawable ? style.url : "";
    img.alt = style.drawable ? "" : "TIFF";
    const blend = document.createElement("label");
    const text = document.createElement("span");
    text.className = "style-name";
    text.textContent = blendText(style, total);
    text.title = style.file.name;
    const slider = document.createElement("input");
    slider.type = "range";
    slider.min = "0";
    slider.max = "1";
    slider.step = "0.05";
    slider.value = String(style.weight);
    slider.className = "blend";
    slider.hidden = state.styles.length < 2;
    slider.setAttribute("aria-label", `Weight of style ${i + 1}`);
    slider.addEventListener("input", () => {
      style.weight = Number(slider.value);
      renderStylesLater();
    });
    blend.append(text, slider);
    const remove = document.createElement("button");
    remove.type = "button";
    remove.className = "remove";
    remove.textContent = "×";
    remove.title = "Remove";
    remove.addEventListener("click", () => {
      URL.revokeObjectURL(style.url);
      state.styles.splice(i, 1);
      renderStyles();
    });
    item.append(img, blend, remove);
    list.append(item);
  });
  refresh();
}

let pendingRender = 0;
function renderStylesLater() {
  // Re-rendering while a slider is dragged would drop the pointer; update the labels only.
  cancelAnimationFrame(pendingRender);
  pendingRender = requestAnimationFrame(() => {
    const total = state.styles.reduce((sum, s) => sum + s.weight, 0);
    document.querySelectorAll("#styles-list li .style-name").forEach((span, i) => {
      span.textContent = blendText(state.styles[i], total);
    });
    refresh();
  });
}

function wireDrop(zone, onFiles) {
  zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    zone.classList.remove("over");
    const files = [...e.dataTransfer.files];  // checked one by one: see checked()
    if (files.length) onFiles(files);
  });
}

// --- running a job --------------------------------------------------------------------------
function running() {
  return state.job && ["queued", "running"].includes(state.job.state);
}

function noWeight() {
  return state.styles.length > 1 && state.styles.every((s) => s.weight <= 0);
}

function refresh() {
  const ready = state.schema && state.content && state.styles.length && !noWeight();
  $("start").disabled = !ready || running();
  $("weight-hint").hidden = !noWeight();
}

function showError(message) {
  $("form-error").textContent = message;
  $("form-error").hidden = !message;
}

async function start() {
  showError("");
  const form = new FormData();
  form.append("content", state.content.file);
  for (const style of state.styles) form.append("styles", style.file);
  form.append("settings", JSON.stringify(collectSettings()));
  $("start").disabled = true;
  let answer;
  try {
    const response = await fetch("/api/jobs", { method: "POST", body: form });
    answer = await response.json().catch(() => ({ detail: response.statusText }));
    if (!response.ok) throw new Error(answer.detail || response.statusText);
  } catch (err) {
    showError(err.message);
    refresh();
    return;
  }
  follow(answer);
}

function follow(job) {
  state.job = job;
  state.shownPreview = 0;
  history.replaceState(null, "", "#job=" + job.id);
  // Until this job has a preview of its own, show its photo, not the last job's painting.
  showPreview(state.content && state.content.drawable ? state.content.url : null);
  render(job);
  if (state.source) state.source.close();
  const source = new EventSource(`/api/jobs/${job.id}/events`);
  state.source = source;
  source.addEventListener("status", (e) => {
    document.body.dataset.events = String(Number(document.body.dataset.events) + 1);
    render(JSON.parse(e.data));
  });
  source.addEventListener("end", () => source.close());
  // The server is going down; the browser reconnects by itself once it is back.
  source.addEventListener("shutdown", () => {
    if (running()) setStatus("The server is restarting; this page reconnects when it is back.", "");
  });
  source.onerror = () => {
    // The stream drops when the server deletes the job: ask once more.
    if (source.readyState === EventSource.CLOSED) poll(job.id);
  };
}

function gone(id) {
  setStatus(`Job ${id.slice(0, 8)} is no longer on the server (finished jobs are deleted ` +
    "after a while, and a server without --workdir forgets them when it stops).", "bad");
  history.replaceState(null, "", location.pathname);
  state.job = null;
  refresh();
}

async function poll(id) {
  const response = await fetch(`/api/jobs/${id}`);
  if (response.ok) render(await response.json());
  else if (state.job && state.job.id === id) gone(id);
}

function formatNumber(x) {
  if (x === null || x === undefined) return "–";
  return Math.abs(x) >= 1e5 || (Math.abs(x) < 1e-2 && x !== 0) ? x.toExponential(3) : x.toPrecision(4);
}

function formatSeconds(s) {
  if (s === null || s === undefined) return "–";
  s = Math.round(s);
  const m = Math.floor(s / 60);
  return m ? `${m} min ${String(s % 60).padStart(2, "0")} s` : `${s} s`;
}

// Multi-scale runs paint small first; saying so explains the coarse early previews.
function scaleText(job) {
  if (!job.scales || job.scales < 2) return "";
  const size = job.scale_size ? ` at ${job.scale_size[0]}×${job.scale_size[1]}` : "";
  return ` (scale ${job.scale + 1} of ${job.scales}${size})`;
}

function setStatus(text, tone) {
  const el = $("status");
  el.textContent = text;
  el.className = "status" + (tone ? " " + tone : "");
}

function render(job) {
  if (!state.job || state.job.id !== job.id) return;
  state.job = job;
  let fraction = job.iterations ? job.iteration / job.iterations : 0;
  if (job.frames) fraction = ((job.frames_done || 0) + Math.min(fraction, 0.99)) / job.frames;
  const finished = ["done", "cancelled", "failed"].includes(job.state);
  const percent = Math.round(100 * (job.state === "done" ? 1 : fraction));
  $("bar").style.width = percent + "%";
  $("progress").setAttribute("aria-valuenow", String(percent));
  const messages = {
    queued: [`Waiting in the queue — position ${job.position}.`, ""],
    running: [job.cancel_requested ? "Stopping after this iteration…"
      : job.iteration && job.frames ? `Painting frame ${job.frame} of ${job.frames}${scaleText(job)} — iteration ${job.iteration} of ${job.iterations}.`
      : job.iteration ? `Painting${scaleText(job)} — iteration ${job.iteration} of ${job.iterations}.`
        : "Preparing the network…", ""],
    done: ["Done." + (job.note ? " " + job.note : ""), "ok"],
    cancelled: job.kind === "video" && job.note
      ? [job.note.charAt(0).toUpperCase() + job.note.slice(1) + ".", ""]
      : [job.has_result ? "Cancelled — the result is the best image reached."
      : job.started ? "Cancelled before its first iteration: there is no result."
        : "Cancelled before it started.", ""],
    failed: ["Failed: " + job.error, "bad"],
    interrupted: ["Interrupted: " + (job.note || "the server stopped.") + ".", ""],
  };
  setStatus(...messages[job.state]);
  $("stat-iteration").textContent = `${job.iteration} / ${job.iterations}`;
  $("stat-eta").textContent = finished ? "–" : formatSeconds(job.eta);
  const losses = job.losses || {};
  for (const key of ["content", "style", "tv", "total"]) {
    $("stat-" + key).textContent = formatNumber(losses[key]);
  }
  if (job.preview_version && job.preview_version !== state.shownPreview) {
    state.shownPreview = job.preview_version;
    showPreview(`/api/jobs/${job.id}/preview?v=${job.preview_version}`);
  }
  $("cancel").hidden = finished;
  $("cancel").disabled = job.cancel_requested;
  $("resume").hidden = !(job.state === "interrupted" && job.resumable);
  const download = $("download");
  const video = job.result_type === "video/mp4";
  download.hidden = !job.has_result;
  download.textContent = video ? "Download MP4" : "Download PNG";
  if (job.has_result) {
    download.href = `/api/jobs/${job.id}/result`;
    download.download = `impasto-${job.id.slice(0, 8)}.${video ? "mp4" : "png"}`;
  }
  const player = $("result-video");
  const src = video && job.has_result ? `/api/jobs/${job.id}/result` : "";
  if (player.getAttribute("src") !== (src || null)) {
    if (src) player.src = src; else player.removeAttribute("src");
  }
  player.hidden = !src;
  if (src) $("preview").hidden = true; // the video shows what the last frame would
  refresh();
}

function showPreview(url) {
  // Only the newest request may change the picture: an older one that loads late must not.
  const token = ++state.previewToken;
  if (!url) {
    $("preview").hidden = true;
    $("preview").removeAttribute("src");
    $("placeholder").hidden = false;
    return;
  }
  // Load off-screen first so the picture never flickers to empty between updates.
  const next = new Image();
  next.onload = () => {
    if (token !== state.previewToken) return;
    $("preview").src = url;
    $("preview").hidden = !$("result-video").hidden;
    $("placeholder").hidden = true;
  };
  next.src = url;
}

async function cancel() {
  if (!state.job) return;
  $("cancel").disabled = true;
  const response = await fetch(`/api/jobs/${state.job.id}/cancel`, { method: "POST" });
  if (response.ok) render(await response.json());
}

async function resume() {
  if (!state.job) return;
  $("resume").disabled = true;
  const response = await fetch(`/api/jobs/${state.job.id}/resume`, { method: "POST" });
  const answer = await response.json().catch(() => ({ detail: response.statusText }));
  $("resume").disabled = false;
  if (response.ok) follow(answer);
  else setStatus(answer.detail || response.statusText, "bad");
}

// --- start-up ----------------------------------------------------------------------------
async function init() {
  $("content-input").addEventListener("change", (e) => setContent(e.target.files[0]));
  $("style-input").addEventListener("change", (e) => {
    addStyles([...e.target.files]);
    e.target.value = "";
  });
  wireDrop($("content-drop"), (files) => setContent(files[0]));
  wireDrop($("style-drop"), addStyles);
  $("start").addEventListener("click", start);
  $("cancel").addEventListener("click", cancel);
  $("resume").addEventListener("click", resume);
  try {
    const response = await fetch("/api/settings");
    state.schema = await response.json();
    buildForm(state.schema);
  } catch (err) {
    showError("Cannot reach the server: " + err.message);
  }
  refresh();
  const earlier = location.hash.match(/^#job=([0-9a-f]{32})$/);
  if (earlier) {
    const response = await fetch(`/api/jobs/${earlier[1]}`);
    if (response.ok) follow(await response.json());
    else gone(earlier[1]);
  }
}

init();
