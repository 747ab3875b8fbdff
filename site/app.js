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
  data.append("file", file); // S3 requires the file to be the last field
  const response = await fetch(form.url, { method: "POST", body: data });
  if (!response.ok) throw new Error(`The upload failed (${response.status}).`);
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

function show(result) {
  $("result").hidden = false;
  $("reason").textContent = "";
  if (result.status === "complete") {
    $("result-label").textContent = LABELS[result.label];
    $("probability").textContent = percent(result.probability);
    $("confidence").textContent = percent(result.confidence);
    $("threshold").textContent = `"Cancer detected" from ${percent(result.threshold)}`;
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
    const type = file.type || (file.name.toLowerCase().endsWith(".png") ? "image/png" : "image/jpeg");
    $("status").textContent = "Uploading…";
    const scan = await api(config, "/v1/scans", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ filename: file.name, content_type: type, size: file.size }),
    });
    await upload(scan.upload, file);
    const result = await waitForResult(config, scan);
    $("status").textContent = "Done.";
    show(result);
  } catch (error) {
    $("status").textContent = error.message;
  } finally {
    $("submit").disabled = false;
  }
}

$("scan-form").addEventListener("submit", submit);
