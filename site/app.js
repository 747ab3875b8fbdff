// PancScan's minimal page: create a scan, upload to the presigned POST, poll for the result.
"use strict";

const $ = (id) => document.getElementById(id);
const FINAL = new Set(["complete", "rejected", "failed"]);
const LABELS = { cancer_detected: "Cancer detected", no_cancer_detected: "No cancer detected" };
const percent = (x) => `${(x * 100).toFixed(1)}%`;

async function loadConfig() {
  const response = await fetch("config.json", { cache: "no-store" });
  if (!response.ok) throw new Error("The page's configuration (config.json) is missing.");
  return response.json();
}

async function api(config, path, options = {}) {
  const response = await fetch(config.apiUrl + path, options);
  const body = response.status === 204 ? null : await response.json();
  if (!response.ok) throw new Error(body?.error?.message || `The API answered ${response.status}.`);
  return body;
}

async function upload(form, file) {
  const data = new FormData();
  for (const [name, value] of Object.entries(form.fields)) data.append(name, value);
  data.append("file", file, "scan"); // last, as S3 requires; a neutral name (file names can carry patient names)
  const response = await fetch(form.url, { method: "POST", body: data });
  if (!response.ok) throw new Error(`The upload failed (${response.status}).`);
}

// Content type by file name: browsers give none for DICOM and NIfTI. The name sent is neutral:
// file names of scans often carry patient names, and the API only needs the extension.
const TYPES = [
  [".nii.gz", "application/gzip"], [".nii", "application/octet-stream"], [".zip", "application/zip"],
  [".png", "image/png"], [".jpg", "image/jpeg"], [".jpeg", "image/jpeg"], [".dcm", "application/dicom"], [".dicom", "application/dicom"],
];

function describeFile(file) {
  const name = file.name.toLowerCase();
  const [extension, type] = TYPES.find(([ext]) => name.endsWith(ext)) || [".dcm", "application/dicom"];
  return { filename: `scan${extension}`, content_type: type, size: file.size };
}

function loadImage(src) {
  return new Promise((resolve, reject) => {
    const image = new Image();
    image.onload = () => resolve(image);
    image.onerror = reject;
    image.src = src;
  });
}

// The slice (the uploaded image, or the server's copy of the scored DICOM/NIfTI slice) with the
// lesion heatmap in red over it.
async function drawView(result, file) {
  const canvas = $("view");
  const context = canvas.getContext("2d");
  const base = result.slice_image
    ? await loadImage(`data:${result.slice_image.media_type};base64,${result.slice_image.data}`)
    : await loadImage(URL.createObjectURL(file));
  context.drawImage(base, 0, 0, canvas.width, canvas.height);
  const heat = await loadImage(`data:${result.heatmap.media_type};base64,${result.heatmap.data}`);
  const layer = document.createElement("canvas");
  layer.width = canvas.width;
  layer.height = canvas.height;
  const layerContext = layer.getContext("2d");
  layerContext.drawImage(heat, 0, 0, layer.width, layer.height);
  const pixels = layerContext.getImageData(0, 0, layer.width, layer.height);
  for (let i = 0; i < pixels.data.length; i += 4) {
    const p = pixels.data[i] / 255;
    pixels.data[i + 3] = Math.max(0, (p - 0.1) / 0.9) * 150;
    pixels.data[i] = 255;
    pixels.data[i + 1] = 40;
    pixels.data[i + 2] = 0;
  }
  layerContext.putImageData(pixels, 0, 0);
  context.drawImage(layer, 0, 0);
  const series = result.series;
  $("caption").textContent = series
    ? `Most suspicious slice: ${series.most_suspicious_slice + 1} of ${series.slices} (from the feet up); red marks where the model looked.`
    : "Red marks where the model looked.";
  $("figure").hidden = false;
}

async function waitForResult(config, scan) {
  const deadline = Date.now() + 60000;
  while (Date.now() < deadline) {
    const result = await api(config, `/v1/scans/${scan.scan_id}`, { headers: { "X-Scan-Token": scan.result_token } });
    if (FINAL.has(result.status)) return result;
    $("status").textContent = result.status === "processing" ? "Analysing…" : "Queued…";
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  throw new Error("No result after a minute. Try again.");
}

function show(result, file) {
  $("result").hidden = false;
  $("figure").hidden = true;
  $("reason").textContent = "";
  if (result.status === "complete") {
    $("result-label").textContent = LABELS[result.label];
    $("probability").textContent = percent(result.probability);
    $("confidence").textContent = percent(result.confidence);
    $("threshold").textContent = `"Cancer detected" from ${percent(result.threshold)}`;
    drawView(result, file).catch(() => {});
  } else {
    $("result-label").textContent = result.status === "rejected" ? "Not analysed" : "Analysis failed";
    for (const id of ["probability", "confidence", "threshold"]) $(id).textContent = "–";
    $("reason").textContent = result.reason?.message || "";
  }
  $("model-version").textContent = result.model_version || "–";
}

async function submit(event) {
  event.preventDefault();
  const file = $("file").files[0];
  if (!file) return;
  $("submit").disabled = true;
  $("result").hidden = true;
  try {
    const config = await loadConfig();
    $("status").textContent = "Uploading…";
    const scan = await api(config, "/v1/scans", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(describeFile(file)),
    });
    await upload(scan.upload, file);
    const result = await waitForResult(config, scan);
    $("status").textContent = "Done.";
    show(result, file);
  } catch (error) {
    $("status").textContent = error.message;
  } finally {
    $("submit").disabled = false;
  }
}

$("scan-form").addEventListener("submit", submit);
