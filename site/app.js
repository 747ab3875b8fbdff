// PancScan's page: choose a scan, check it, preview it, upload it to the presigned form with
// progress, follow its status, show the result with its heatmap (for a series: every scored slice),
// delete it, remember recent scans.
// No framework, no build step, no inline script (a strict Content-Security-Policy applies).
import { drawDicom, parseDicom } from "./dicom-preview.js";

const $ = (id) => document.getElementById(id);
const FINAL = new Set(["complete", "rejected", "failed"]);
const LABELS = { cancer_detected: "Cancer detected", no_cancer_detected: "No cancer detected" };
const POLL_MS = 500;
const RESULT_TIMEOUT_MS = 90_000;
const RECENT_KEY = "pancscan.recent"; // [{scan_id, result_token}]: never images or results
const RECENT_MAX = 20;

// What the API accepts: content type by file name (browsers give none for DICOM and NIfTI).
const TYPES = [
  [".nii.gz", "application/gzip", "NIfTI volume"], [".nii", "application/octet-stream", "NIfTI volume"],
  [".zip", "application/zip", "zip of a DICOM series"], [".png", "image/png", "PNG image"],
  [".jpg", "image/jpeg", "JPEG image"], [".jpeg", "image/jpeg", "JPEG image"],
  [".dcm", "application/dicom", "DICOM file"], [".dicom", "application/dicom", "DICOM file"],
];

// Reason codes in plain language, with what to do.
const REASONS = {
  unreadable_file: "PancScan could not read this file. Check that it is a complete DICOM, zip, NIfTI, PNG or JPEG file.",
  too_large: "The file, the image or the series is larger than PancScan accepts. Send a single series or a smaller file.",
  not_abdominal_ct: "This does not look like an axial CT slice of the abdomen showing the pancreas. PancScan only reads those.",
  unsupported_modality: "This is not CT (for example MR). PancScan's model was trained on CT only.",
  not_axial: "The slices are not axial (sagittal, coronal or tilted). Send the axial series.",
  too_many_series: "The zip holds more than one series. Send one series per upload.",
  empty_series: "The zip holds no DICOM image.",
  upload_missing: "The upload did not arrive. Try again.",
  processing_error: "PancScan failed while analysing this scan. Try again later.",
};

const percent = (x) => `${(x * 100).toFixed(1)}%`;
const megabytes = (bytes) => `${Math.round(bytes / 1048576)} MB`;

let config = null;
let chosen = null; // {file, filename, content_type}
let shown = null; // {scan, result, baseImage, heatImage}

async function loadConfig() {
  if (!config) {
    const response = await fetch("config.json", { cache: "no-store" });
    if (!response.ok) throw new Error("The page's configuration (config.json) is missing.");
    config = await response.json();
  }
  return config;
}

async function api(path, options = {}) {
  const response = await fetch(config.apiUrl + path, options);
  const body = response.status === 204 ? null : await response.json().catch(() => null);
  if (!response.ok) {
    const error = new Error(body?.error?.message || `The API answered ${response.status}.`);
    error.status = response.status;
    throw error;
  }
  return body;
}

// ---- choosing a file -------------------------------------------------------------------------

function describeFile(file) {
  const name = file.name.toLowerCase();
  const match = TYPES.find(([ext]) => name.endsWith(ext));
  if (match) return { extension: match[0], content_type: match[1], kind: match[2] };
  // DICOM files often have no extension at all; anything else is refused here
  return name.includes(".") ? null : { extension: ".dcm", content_type: "application/dicom", kind: "DICOM file" };
}

function checkFile(file) {
  const described = describeFile(file);
  if (!described) return "PancScan reads DICOM (.dcm or no extension), a zip of one DICOM series, NIfTI (.nii, .nii.gz), PNG or JPEG. Choose one of those.";
  if (file.size === 0) return "The file is empty. Choose another.";
  if (file.size > config.maxUploadBytes) return `The file is ${megabytes(file.size)}; PancScan accepts up to ${megabytes(config.maxUploadBytes)}. Send a single series, or a smaller file.`;
  return null;
}

async function choose(file) {
  await loadConfig();
  $("file-error").textContent = "";
  $("chosen").hidden = true;
  $("submit").disabled = true;
  chosen = null;
  if (!file) return;
  const problem = checkFile(file);
  if (problem) {
    $("file-error").textContent = problem;
    return;
  }
  const described = describeFile(file);
  // The name sent to the API is neutral: file names of scans often carry patient names.
  chosen = { file, filename: `scan${described.extension}`, content_type: described.content_type };
  $("file-summary").textContent = `${described.kind}, ${file.size < 1048576 ? `${Math.ceil(file.size / 1024)} KB` : megabytes(file.size)}.`;
  $("chosen").hidden = false;
  $("submit").disabled = false;
  await preview(file, described);
}

async function preview(file, described) {
  const canvas = $("preview");
  const context = canvas.getContext("2d");
  context.clearRect(0, 0, canvas.width, canvas.height);
  let caption = "Preview of the chosen image.";
  let drawn = true;
  try {
    if (described.content_type.startsWith("image/")) {
      context.drawImage(await loadImage(URL.createObjectURL(file)), 0, 0, canvas.width, canvas.height);
    } else if (described.content_type === "application/dicom") {
      const slice = parseDicom(await file.arrayBuffer());
      if (slice) drawDicom(canvas, slice);
      else [drawn, caption] = [false, "No preview for this DICOM file (compressed or unusual); PancScan will still read it."];
    } else {
      [drawn, caption] = [false, "No preview for a series or volume: after analysis the most suspicious slice is shown."];
    }
  } catch {
    [drawn, caption] = [false, "No preview for this file."];
  }
  canvas.hidden = !drawn;
  $("preview-caption").textContent = caption;
}

// ---- uploading and waiting -------------------------------------------------------------------

function setStep(step) {
  for (const item of $("steps").children) {
    const order = ["uploading", "queued", "analysing", "done"];
    const state = order.indexOf(item.dataset.step) - order.indexOf(step);
    item.className = state < 0 ? "step-done" : state === 0 ? "step-current" : "";
    if (state === 0) item.setAttribute("aria-current", "step");
    else item.removeAttribute("aria-current");
  }
}

function upload(form, file) {
  // XMLHttpRequest, not fetch: only it reports upload progress.
  return new Promise((resolve, reject) => {
    const data = new FormData();
    for (const [name, value] of Object.entries(form.fields)) data.append(name, value);
    data.append("file", file, "scan"); // last, as S3 requires; a neutral name
    const request = new XMLHttpRequest();
    request.open("POST", form.url);
    request.upload.onprogress = (event) => {
      if (event.lengthComputable) {
        const value = Math.round((event.loaded / event.total) * 100);
        $("upload-progress").value = value;
        $("upload-progress").textContent = `${value}%`;
      }
    };
    request.onload = () => (request.status < 300 ? resolve() : reject(new Error(`The upload failed (${request.status}).`)));
    request.onerror = () => reject(new Error("The upload failed: the storage could not be reached."));
    request.send(data);
  });
}

async function waitForResult(scan) {
  const deadline = Date.now() + RESULT_TIMEOUT_MS;
  while (Date.now() < deadline) {
    const result = await api(`/v1/scans/${scan.scan_id}`, { headers: { "X-Scan-Token": scan.result_token } });
    if (FINAL.has(result.status)) return result;
    setStep(result.status === "processing" ? "analysing" : "queued");
    $("status").textContent = result.status === "processing" ? "Analysing the scan…" : "Uploaded; waiting for the analysis to start…";
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
  const error = new Error("No result after 90 seconds. The analysis may still finish: try again, or open it later from Recent scans.");
  error.timeout = true;
  throw error;
}

async function submit(event) {
  event.preventDefault();
  if (!chosen) return;
  $("submit").disabled = true;
  $("retry").hidden = true;
  $("result").hidden = true;
  $("progress-section").hidden = false;
  $("upload-progress").value = 0;
  setStep("uploading");
  $("status").textContent = "Uploading…";
  try {
    const scan = await api("/v1/scans", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ filename: chosen.filename, content_type: chosen.content_type, size: chosen.file.size }),
    });
    remember(scan);
    await upload(scan.upload, chosen.file);
    setStep("queued");
    const result = await waitForResult(scan);
    setStep("done");
    $("status").textContent = "Done.";
    await show(scan, result, chosen.file);
  } catch (error) {
    $("status").textContent = error.message;
    $("retry").hidden = false;
  } finally {
    $("submit").disabled = !chosen;
  }
}

// ---- the result --------------------------------------------------------------------------------

function loadImage(src) {
  return new Promise((resolve, reject) => {
    const image = new Image();
    image.onload = () => resolve(image);
    image.onerror = () => reject(new Error("image"));
    image.src = src;
  });
}

const dataUrl = (png) => `data:${png.media_type};base64,${png.data}`;

function thresholdInWords(result) {
  return `"Cancer detected" from ${percent(result.threshold)}: chosen so that about 95 in 100 normal scans of the validation patients are called "No cancer detected". Confidence is 50% at the threshold and 100% at 0% or 100%.`;
}

async function show(scan, result, file) {
  $("result").hidden = false;
  $("figure").hidden = true;
  $("series").hidden = true;
  $("reason").textContent = "";
  $("model-version").textContent = result.model_version || "–";
  if (result.status === "complete") {
    $("result-label").textContent = LABELS[result.label];
    $("result-summary").textContent = result.label === "cancer_detected"
      ? "The model's probability is at or above its threshold. This is not a diagnosis: a radiologist must read the scan."
      : "The model's probability is below its threshold. This is not a diagnosis and does not rule a lesion out.";
    $("probability").textContent = percent(result.probability);
    $("confidence").textContent = percent(result.confidence);
    $("threshold").textContent = thresholdInWords(result);
    $("result-figures").hidden = false;
  } else {
    $("result-label").textContent = result.status === "rejected" ? "Not analysed" : "Analysis failed";
    $("result-summary").textContent = "";
    $("result-figures").hidden = true;
    const code = result.reason?.code;
    $("reason").textContent = `${REASONS[code] || result.reason?.message || ""} (reason: ${code || "unknown"})`;
  }
  shown = { scan, result, baseImage: null, heatImage: null, sheets: null, slice: null };
  $("result-label").focus?.();
  if (result.status === "complete" && result.heatmap) {
    const base = result.slice_image ? dataUrl(result.slice_image) : file ? URL.createObjectURL(file) : null;
    if (base) {
      shown.baseImage = await loadImage(base).catch(() => null);
      shown.heatImage = await loadImage(dataUrl(result.heatmap)).catch(() => null);
      if (shown.baseImage && shown.heatImage) {
        drawView();
        $("figure").hidden = false;
      }
    }
    if (result.series) await showSeries(scan, result.series);
  }
}

// Every scored slice of a series, as sheets of tiles (GET /v1/scans/{id}/slices): fetched as blobs,
// so that the heatmap can be read from a canvas and the page's image sources stay its own.
async function loadSheets(scan) {
  const view = await api(`/v1/scans/${scan.scan_id}/slices`, { headers: { "X-Scan-Token": scan.result_token } });
  const fetchImage = async (url) => {
    const response = await fetch(url);
    if (!response.ok) throw new Error(`A slice sheet could not be read (${response.status}).`);
    return loadImage(URL.createObjectURL(await response.blob()));
  };
  const images = await Promise.all(view.sheets.map((sheet) => fetchImage(sheet.image)));
  const heatmaps = await Promise.all(view.sheets.map((sheet) => fetchImage(sheet.heatmap)));
  return { ...view, images, heatmaps };
}

function drawTile(context, sheet, tile, size, width, height) {
  context.drawImage(sheet, tile.column * size, tile.row * size, size, size, 0, 0, width, height);
}

function drawView() {
  const canvas = $("view");
  const context = canvas.getContext("2d");
  const series = shown.result.series;
  const tile = shown.sheets && shown.slice !== null ? shown.sheets.slices[shown.slice] : null;
  if (tile) drawTile(context, shown.sheets.images[tile.sheet], tile, shown.sheets.image_tile_px, canvas.width, canvas.height);
  else context.drawImage(shown.baseImage, 0, 0, canvas.width, canvas.height);
  const index = tile ? tile.index : series?.most_suspicious_slice;
  $("caption").textContent = (series
    ? `Slice ${index + 1} of ${series.slices} (counted from the feet)${index === series.most_suspicious_slice ? ": the most suspicious" : ""}. `
    : "") + "Red marks where the model looked; it is not an outline of a lesion.";
  canvas.setAttribute("aria-label", `The scanned slice${$("show-heatmap").checked ? " with the model's heatmap in red" : ""}`);
  if (!$("show-heatmap").checked) return;
  const opacity = Number($("opacity").value) / 100;
  const layer = document.createElement("canvas");
  layer.width = canvas.width;
  layer.height = canvas.height;
  const layerContext = layer.getContext("2d");
  if (tile) drawTile(layerContext, shown.sheets.heatmaps[tile.sheet], tile, shown.sheets.heatmap_tile_px, layer.width, layer.height);
  else layerContext.drawImage(shown.heatImage, 0, 0, layer.width, layer.height);
  const pixels = layerContext.getImageData(0, 0, layer.width, layer.height);
  let hottest = 0;
  for (let i = 0; i < pixels.data.length; i += 4) {
    const p = pixels.data[i] / 255;
    hottest = Math.max(hottest, p);
    pixels.data[i + 3] = Math.max(0, (p - 0.1) / 0.9) * 255 * opacity;
    pixels.data[i] = 255;
    pixels.data[i + 1] = 40;
    pixels.data[i + 2] = 0;
  }
  layerContext.putImageData(pixels, 0, 0);
  context.drawImage(layer, 0, 0);
  if (hottest <= 0.1) $("caption").textContent += " No spot on this slice reached 10% on the heatmap, so none is marked.";
}

// How the scan's probability comes from its slices (pancscan.detection.series: the strongest stretch,
// weighed against the length of pancreas scored).
function seriesInWords(series, result, scored) {
  const [first, last] = series.strongest_stretch;
  const extent = series.positions_mm[scored[scored.length - 1]] - series.positions_mm[scored[0]];
  const stretch = first === last ? `its most suspicious slice (${first + 1})` : `its most suspicious ${series.window_mm} mm stretch (slices ${first + 1} to ${last + 1})`;
  return `The scan's probability (${percent(result.probability)}) is not an average of its slices: it comes from ${stretch}, ` +
    `weighed against how much pancreas was scored (${series.scored_slices} slices over ${extent.toFixed(0)} mm). ` +
    "The longer a normal scan, the more likely one of its slices scores high by chance, so the same slice counts for less in a longer scan. " +
    `A slice at or above the slice threshold (${percent(series.slice_threshold)}, the dashed line) would be called "Cancer detected" on its own; ` +
    `the scan is called so from ${percent(result.threshold)}.`;
}

async function showSeries(scan, series) {
  const result = shown.result;
  const chart = $("chart");
  const probabilities = series.slice_probabilities;
  const positions = series.positions_mm;
  const n = probabilities.length;
  const span = positions[n - 1] - positions[0] || 1;
  const [left, right, top, bottom] = [34, 312, 8, 100]; // plot area in the 320 x 130 view box
  const x = (i) => (n === 1 ? (left + right) / 2 : left + ((positions[i] - positions[0]) * (right - left)) / span);
  const y = (p) => bottom - p * (bottom - top);
  const title = chart.querySelector("title");
  chart.replaceChildren(title);
  const svg = (name, attributes, text) => {
    const node = document.createElementNS("http://www.w3.org/2000/svg", name);
    for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, value);
    if (text !== undefined) node.textContent = text;
    chart.append(node);
    return node;
  };
  svg("line", { x1: left, y1: bottom, x2: right, y2: bottom, class: "axis" });
  svg("line", { x1: left, y1: top, x2: left, y2: bottom, class: "axis" });
  for (const p of [0, 0.5, 1]) svg("text", { x: left - 3, y: y(p) + 3, class: "tick", "text-anchor": "end" }, `${p * 100}%`);
  svg("text", { x: left, y: bottom + 11, class: "tick", "text-anchor": "start" }, "0 mm");
  svg("text", { x: right, y: bottom + 11, class: "tick", "text-anchor": "end" }, `${span.toFixed(0)} mm`);
  svg("text", { x: (left + right) / 2, y: bottom + 24, class: "label", "text-anchor": "middle" }, "position along the body, from the feet (mm)");
  svg("text", { x: 9, y: (top + bottom) / 2, class: "label", "text-anchor": "middle", transform: `rotate(-90 9 ${(top + bottom) / 2})` }, "slice probability");
  svg("line", { x1: left, x2: right, y1: y(series.slice_threshold), y2: y(series.slice_threshold), class: "threshold" });
  const points = probabilities.map((p, i) => (p === null ? null : `${x(i).toFixed(1)},${y(p).toFixed(1)}`)).filter(Boolean);
  svg("polyline", { points: points.join(" "), class: "curve" });
  svg("circle", { cx: x(series.most_suspicious_slice), cy: y(probabilities[series.most_suspicious_slice] ?? 0), r: 3.5, class: "peak" });
  const marker = svg("line", { y1: top, y2: bottom, class: "marker" });
  // The slider steps through the scored slices; each shows its own image and heatmap once the sheets are in.
  const scored = probabilities.map((p, i) => (p === null ? null : i)).filter((i) => i !== null);
  $("series-explained").textContent = seriesInWords(series, result, scored);
  const slider = $("slice");
  slider.max = String(scored.length);
  const select = (k) => {
    const index = scored[k - 1];
    marker.setAttribute("x1", x(index));
    marker.setAttribute("x2", x(index));
    $("slice-value").textContent = `Scored slice ${k} of ${scored.length}: slice ${index + 1} of ${n}, ${positions[index].toFixed(1)} mm, ` +
      `probability ${percent(probabilities[index])}${index === series.most_suspicious_slice ? " (most suspicious)" : ""}.`;
    if (shown.sheets) {
      shown.slice = k - 1;
      drawView();
    }
  };
  slider.value = String(scored.indexOf(series.most_suspicious_slice) + 1);
  slider.oninput = () => select(Number(slider.value));
  select(Number(slider.value));
  $("series").hidden = false;
  $("slices-status").textContent = "Loading every scored slice…";
  try {
    const sheets = await loadSheets(scan);
    if (shown?.scan.scan_id !== scan.scan_id) return; // another result was opened meanwhile
    shown.sheets = sheets;
    select(Number(slider.value));
    $("slices-status").textContent = `Move the slider, or use the arrow keys on it or on the image, to see each of the ${scored.length} scored slices with its heatmap. ` +
      `The other ${n - scored.length} slices lie between those sampled every ${series.grid_mm} mm, or show no pancreas.`;
  } catch (error) {
    $("slices-status").textContent = `Only the most suspicious slice can be shown: ${error.message}`;
  }
}

// Arrow keys on the image step through the slices as they do on the slider.
function stepSlice(event) {
  const steps = { ArrowLeft: -1, ArrowDown: -1, ArrowRight: 1, ArrowUp: 1 };
  if (!shown?.sheets || !(event.key in steps)) return;
  event.preventDefault();
  const slider = $("slice");
  slider.value = String(Math.min(Number(slider.max), Math.max(1, Number(slider.value) + steps[event.key])));
  slider.oninput();
}

async function deleteShown() {
  if (!shown) return;
  try {
    await api(`/v1/scans/${shown.scan.scan_id}`, { method: "DELETE", headers: { "X-Scan-Token": shown.scan.result_token } });
  } catch (error) {
    if (error.status !== 404) {
      $("status").textContent = error.message;
      return;
    }
  }
  forget(shown.scan.scan_id);
  shown = null;
  $("result").hidden = true;
  $("progress-section").hidden = false;
  $("status").textContent = "The result was deleted from PancScan.";
}

// ---- recent scans (ids and tokens only) --------------------------------------------------------

function recent() {
  try {
    const list = JSON.parse(localStorage.getItem(RECENT_KEY) || "[]");
    return Array.isArray(list) ? list.filter((s) => typeof s.scan_id === "string" && typeof s.result_token === "string") : [];
  } catch {
    return [];
  }
}

function saveRecent(list) {
  localStorage.setItem(RECENT_KEY, JSON.stringify(list.slice(0, RECENT_MAX).map(({ scan_id, result_token }) => ({ scan_id, result_token }))));
  renderRecent();
}

const remember = (scan) => saveRecent([scan, ...recent().filter((s) => s.scan_id !== scan.scan_id)]);
const forget = (scanId) => saveRecent(recent().filter((s) => s.scan_id !== scanId));

function renderRecent() {
  const list = recent();
  const ul = $("recent");
  ul.replaceChildren();
  $("recent-empty").hidden = list.length > 0;
  for (const scan of list) {
    const item = document.createElement("li");
    const name = document.createElement("code");
    name.textContent = scan.scan_id.slice(0, 8);
    const open = document.createElement("button");
    open.type = "button";
    open.className = "secondary";
    open.textContent = "Show";
    open.setAttribute("aria-label", `Show scan ${scan.scan_id.slice(0, 8)}`);
    open.onclick = () => reopen(scan);
    const remove = document.createElement("button");
    remove.type = "button";
    remove.className = "secondary";
    remove.textContent = "Remove";
    remove.setAttribute("aria-label", `Remove scan ${scan.scan_id.slice(0, 8)} from this list`);
    remove.onclick = () => forget(scan.scan_id);
    item.append(name, " ", open, " ", remove);
    ul.append(item);
  }
}

async function reopen(scan) {
  await loadConfig();
  $("progress-section").hidden = false;
  try {
    const result = await api(`/v1/scans/${scan.scan_id}`, { headers: { "X-Scan-Token": scan.result_token } });
    $("status").textContent = FINAL.has(result.status) ? "" : "Still being analysed.";
    if (FINAL.has(result.status)) await show(scan, result, null);
  } catch (error) {
    $("status").textContent = error.status === 404 ? "That result has expired or was deleted." : error.message;
    if (error.status === 404) forget(scan.scan_id);
  }
}

// ---- wiring ------------------------------------------------------------------------------------

function wire() {
  $("file").addEventListener("change", () => choose($("file").files[0]));
  const drop = $("drop");
  drop.addEventListener("dragover", (event) => {
    event.preventDefault();
    drop.classList.add("over");
  });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    choose(event.dataTransfer.files[0]);
  });
  $("scan-form").addEventListener("submit", submit);
  $("retry").addEventListener("click", (event) => submit(event));
  $("delete").addEventListener("click", deleteShown);
  $("show-heatmap").addEventListener("change", () => shown && drawView());
  $("opacity").addEventListener("input", () => shown && drawView());
  $("view").addEventListener("keydown", stepSlice);
  loadConfig()
    .then((c) => {
      $("max-size").textContent = megabytes(c.maxUploadBytes);
      if (c.auth === "jwt") {
        // hospital clients only: the API refuses calls without an access token, so no upload here
        $("file").disabled = true;
        $("file-error").textContent = "This deployment accepts hospital systems only (API clients with access tokens); " +
          "uploads from this page are turned off. Integrators: see the API description at " + c.apiUrl + "/v1/openapi.json.";
      }
    })
    .catch((error) => { $("file-error").textContent = error.message; });
  renderRecent();
}

wire();
