// The rnnmt web page: plain JavaScript against the API (GET /languages, POST /translate, POST /translate_file).
// Translated HTML is only ever shown as text (textContent) or inside a sandboxed iframe (srcdoc, sandbox=""):
// never put into this page's own DOM.
"use strict";
const $ = (id) => document.getElementById(id);
const AUTO = "auto"; // the source value that asks the server to detect each text's language
const FORMAT_NAMES = { text: "plain text", html: "HTML", markdown: "Markdown" };
const FORMAT_HINTS = {
  text: "",
  html: "Tags are kept and put back around the translated words; the result is shown as HTML source, "
    + "with a sandboxed preview.",
  markdown: "Markdown syntax is kept; the result is shown as Markdown source.",
};
const PLACEHOLDERS = {
  text: "A man is riding a bicycle down the street.",
  html: "<p>A man is riding a <b>bicycle</b> down the street.</p>",
  markdown: "A man is riding a **bicycle** down the street.",
};
// Put first in the preview: its document may load nothing (no images, fonts or styles from elsewhere), and its
// links open nowhere (a new window, which the sandbox does not allow) rather than inside the preview.
const PREVIEW_POLICY = '<meta http-equiv="Content-Security-Policy" '
  + "content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\"><base target=\"_blank\">";
let pairs = []; // GET /languages pairs: {source, target, model, pivot, models, ...}, pivoted ones included
let names = {}; // language code -> name
let current = null; // the last translation item shown, with the source, target and format it was asked with
let downloadUrl = null; // the Blob URL of the last translated document

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = !message;
}

async function request(path, options) {
  try {
    return await fetch(path, options);
  } catch (err) {
    throw new Error(`Could not reach the server (${err.message}).`);
  }
}

// The message of an error answer ({"error": {"code", "message"}}), or its status when it has none.
function errorMessage(response, body) {
  const message = body && body.error && body.error.message;
  return message || `The server answered ${response.status} ${response.statusText}.`;
}

async function api(path, options) {
  const response = await request(path, options);
  let body = null;
  try { body = await response.json(); } catch (e) { body = null; }
  if (!response.ok) throw new Error(errorMessage(response, body));
  return body;
}

function languageName(code) {
  return names[code] || code;
}

function pairModels(pair) {
  return pair.models && pair.models.length ? pair.models : [pair.model];
}

function targetLabel(pair) {
  const name = languageName(pair.target);
  return pair.pivot ? `${name} (via ${languageName(pair.pivot)})` : name;
}

// The targets of the chosen source; for "Detect language", every target reachable from any source.
function fillTargets() {
  const source = $("source").value;
  const previous = $("target").value;
  let options;
  if (source === AUTO) {
    const targets = [...new Set(pairs.map((p) => p.target))];
    options = targets.map((t) => new Option(languageName(t), t));
  } else {
    options = pairs.filter((p) => p.source === source).map((p) => new Option(targetLabel(p), p.target));
  }
  $("target").replaceChildren(...options);
  if (options.some((o) => o.value === previous)) $("target").value = previous;
  describeRoute();
}

// Which model(s) the chosen pair uses, under the language selects.
function describeRoute() {
  const source = $("source").value;
  const target = $("target").value;
  let text = "";
  if (source === AUTO) {
    text = "The language of the text is detected, then translated by the model(s) for that language.";
  } else {
    const pair = pairs.find((p) => p.source === source && p.target === target);
    if (pair && pair.pivot) {
      text = `No model translates ${languageName(source)} to ${languageName(target)} directly: `
        + `through ${languageName(pair.pivot)} with ${pairModels(pair).join(" then ")}.`;
    } else if (pair) {
      text = `Model: ${pair.model}` + (pair.bleu === null || pair.bleu === undefined ? "" : `, test BLEU ${pair.bleu}`);
    }
  }
  $("route").textContent = text;
}

async function loadLanguages() {
  try {
    const data = await api("/languages");
    pairs = data.pairs;
    names = Object.fromEntries(data.languages.map((l) => [l.code, l.name]));
    const sources = [...new Set(pairs.map((p) => p.source))];
    $("source").replaceChildren(new Option("Detect language", AUTO),
      ...sources.map((s) => new Option(languageName(s), s)));
    fillTargets();
    if (!pairs.length) showError("The server has no translation model loaded.");
  } catch (err) {
    showError(err.message);
  }
}

function attentionTable(sentence) {
  const table = document.createElement("table");
  const head = table.createTHead().insertRow();
  head.appendChild(document.createElement("th"));
  for (const piece of sentence.source_pieces) {
    const th = document.createElement("th");
    th.scope = "col";
    th.textContent = piece;
    head.appendChild(th);
  }
  const body = table.createTBody();
  sentence.weights.forEach((row, i) => {
    const tr = body.insertRow();
    tr.className = "att-row";
    const th = document.createElement("th");
    th.scope = "row";
    th.textContent = sentence.target_pieces[i];
    tr.appendChild(th);
    row.forEach((w, j) => {
      const td = tr.insertCell();
      const shade = Math.round(255 * (1 - w));
      td.style.background = `rgb(${shade}, ${shade}, 255)`;
      td.title = `${sentence.target_pieces[i]} ← ${sentence.source_pieces[j]}: ${w.toFixed(3)}`;
    });
  });
  return table;
}

// Why a translation has no attention to show (HTML, Markdown, glossary terms and protected spans are put in
// place through the best hypothesis's alignment, and the server answers them without attention).
function explainNoAttention(attention) {
  const missing = Boolean(current) && !attention && !(current.pivot && current.pivot.attention);
  $("no-attention").hidden = !missing;
  if (!missing) return;
  $("no-attention").textContent = current.format === "text"
    ? "No attention for this text: its glossary terms or protected spans (URLs, numbers, placeholders, …) "
      + "were put in place through the best translation only."
    : `Attention is shown for plain text only, not for ${FORMAT_NAMES[current.format]}.`;
}

// One heatmap per sentence; a pivoted translation shows both legs, each under a caption.
function drawHeatmap(attention) {
  const box = $("heatmap");
  box.replaceChildren();
  explainNoAttention(attention);
  const pivot = current && current.pivot;
  if (!pivot) {
    for (const sentence of attention || []) box.appendChild(attentionTable(sentence));
    return;
  }
  const [first, second] = current.models;
  const source = languageName(current.source), middle = languageName(pivot.language);
  const target = languageName(current.target);
  const legs = [
    [`First leg: ${source} → ${middle} (${first})`, pivot.attention],
    [`Second leg: ${middle} → ${target} (${second})`, attention],
  ];
  for (const [caption, sentences] of legs) {
    const figure = document.createElement("figure");
    figure.className = "leg";
    const title = document.createElement("figcaption");
    title.textContent = caption;
    figure.append(title, ...(sentences || []).map(attentionTable));
    box.appendChild(figure);
  }
}

// The translation as text; translated HTML also rendered, in the sandboxed iframe only.
function showOutput(text, format) {
  $("output").textContent = text;
  $("output").classList.toggle("markup", format !== "text");
  const html = format === "html";
  $("preview-box").hidden = !html;
  if (html) $("preview").srcdoc = PREVIEW_POLICY + text;
  else $("preview").removeAttribute("srcdoc");
}

function showUnplaced(unplaced) {
  const box = $("unplaced");
  box.hidden = !(unplaced && unplaced.length);
  box.textContent = box.hidden ? ""
    : `Could not be placed in the translation, so appended at the end: ${unplaced.map((s) => `“${s}”`).join(", ")}.`;
}

function select(index) {
  const alt = current.alternatives[index];
  showOutput(alt.text, current.format);
  [...$("alternatives").children].forEach((li, i) => li.setAttribute("aria-selected", String(i === index)));
  drawHeatmap(alt.attention);
}

// "Detected: English (en), 97%", marked "(not sure)" when the detector does not trust its answer.
function showDetected(found) {
  const box = $("detected");
  box.hidden = !found;
  box.classList.toggle("unsure", Boolean(found && !found.reliable));
  if (!found) return;
  const percent = `${Math.round(found.confidence * 100)}%`;
  box.textContent = `Detected: ${languageName(found.language)} (${found.language}), ${percent}`
    + (found.reliable ? "" : " (not sure)");
}

function showPivot(pivot) {
  $("pivot").hidden = !pivot;
  $("pivot-language").textContent = pivot ? languageName(pivot.language) : "";
  $("pivot-text").textContent = pivot ? pivot.text : "";
}

function clearResult() {
  current = null; // never leave an old translation next to a new error
  showOutput("", "text");
  showUnplaced(null);
  $("no-attention").hidden = true;
  $("timing").textContent = "";
  $("alternatives").replaceChildren();
  $("heatmap").replaceChildren();
  showDetected(null);
  showPivot(null);
}

function chosenFormat() {
  return document.querySelector("input[name=format]:checked").value;
}

function formatChanged() {
  const format = chosenFormat();
  $("format-hint").textContent = FORMAT_HINTS[format];
  $("text").placeholder = PLACEHOLDERS[format];
}

// "term = target term" per line (blank lines skipped) -> {term: target term}, or null when there is none.
function parseGlossary(text) {
  const glossary = Object.create(null); // so that a term such as "__proto__" stays a term
  text.split(/\r?\n/).forEach((line, i) => {
    if (!line.trim()) return;
    const at = line.indexOf("=");
    const term = at < 0 ? "" : line.slice(0, at).trim();
    const translation = at < 0 ? "" : line.slice(at + 1).trim();
    if (!term || !translation) {
      throw new Error(`Glossary line ${i + 1} ("${line.trim()}"): write one "term = target term" per line.`);
    }
    glossary[term] = translation;
  });
  return Object.keys(glossary).length ? glossary : null;
}

async function translate(event) {
  if (event) event.preventDefault();
  showError("");
  const beam = Number($("beam").value);
  const body = {
    text: $("text").value, source: $("source").value, target: $("target").value,
    beam_size: beam, n_best: Math.min(Number($("nbest").value), beam),
    return_scores: true, return_attention: true, format: chosenFormat(),
  };
  try {
    const glossary = parseGlossary($("glossary").value);
    if (glossary) body.glossary = glossary;
  } catch (err) {
    $("glossary-box").open = true;
    showError(err.message);
    clearResult();
    return;
  }
  $("translate").disabled = true;
  try {
    const data = await api("/translate", {
      method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body),
    });
    const item = data.translations[0];
    const source = item.detected_language ? item.detected_language.language : body.source;
    current = { ...item, source, target: body.target, format: body.format };
    $("alternatives").replaceChildren(...current.alternatives.map((alt, i) => {
      const li = document.createElement("li");
      li.tabIndex = 0;
      li.setAttribute("role", "option");
      li.textContent = `${alt.text}  (score ${alt.score === null ? "–" : alt.score.toFixed(3)})`;
      li.addEventListener("click", () => select(i));
      li.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); select(i); } });
      return li;
    }));
    showDetected(item.detected_language);
    showPivot(item.pivot);
    showUnplaced(item.unplaced);
    const models = item.models && item.models.length ? item.models : [];
    $("timing").textContent = (models.length ? `${models.length > 1 ? "Models" : "Model"}: ${models.join(" → ")}, `
      : "Already in the target language, ") + `${data.timing_ms.toFixed(0)} ms`;
    select(0);
  } catch (err) {
    showError(err.message);
    clearResult();
  } finally {
    $("translate").disabled = false;
  }
}

// --- documents: POST /translate_file answers the translated file itself ------------------------------------------

function showFileError(message) {
  $("file-error").textContent = message;
  $("file-error").hidden = !message;
}

// The file name of a Content-Disposition header: filename* (RFC 5987, UTF-8) first, then filename.
function dispositionName(header) {
  if (!header) return null;
  let name = null;
  const star = /filename\*\s*=\s*[^']*'[^']*'([^;\s]+)/i.exec(header);
  if (star) {
    try { name = decodeURIComponent(star[1]); } catch (e) { name = null; }
  }
  if (!name) {
    const plain = /filename\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;\s]+))/i.exec(header);
    if (plain) name = plain[1] !== undefined ? plain[1].replace(/\\(.)/g, "$1") : plain[2];
  }
  name = name && name.split(/[\\/]/).pop().trim();
  return name || null;
}

function sizeText(bytes) {
  return bytes < 1024 ? `${bytes} bytes` : `${(bytes / 1024).toFixed(bytes < 10240 ? 1 : 0)} KiB`;
}

function clearDownload() {
  if (downloadUrl) URL.revokeObjectURL(downloadUrl);
  downloadUrl = null;
  $("download").href = "#";
  $("download").removeAttribute("download");
  $("file-result").hidden = true;
  $("file-detected").hidden = true;
  $("file-detected").textContent = "";
}

async function translateFile(event) {
  if (event) event.preventDefault();
  showFileError("");
  clearDownload();
  const file = $("file").files[0];
  if (!file) {
    showFileError("Choose a document to translate first.");
    return;
  }
  const form = new FormData();
  form.append("file", file, file.name);
  form.append("source", $("source").value);
  form.append("target", $("target").value);
  $("translate-file").disabled = true;
  $("file-status").textContent = `Translating ${file.name}…`;
  try {
    const response = await request("/translate_file", { method: "POST", body: form });
    if (!response.ok) {
      let body = null;
      try { body = await response.json(); } catch (e) { body = null; }
      throw new Error(errorMessage(response, body));
    }
    const blob = await response.blob();
    const name = dispositionName(response.headers.get("content-disposition")) || file.name;
    downloadUrl = URL.createObjectURL(blob);
    $("download").href = downloadUrl;
    $("download").download = name;
    $("download").textContent = `Download ${name}`;
    $("file-result").hidden = false;
    const detected = response.headers.get("x-detected-language");
    if (detected) {
      $("file-detected").textContent = `Detected: ${languageName(detected)} (${detected})`;
      $("file-detected").hidden = false;
    }
    $("file-status").textContent = `Translated ${file.name} into ${languageName($("target").value)} `
      + `(${sizeText(blob.size)}).`;
  } catch (err) {
    $("file-status").textContent = "";
    showFileError(err.message);
  } finally {
    $("translate-file").disabled = false;
  }
}

// The document types the server takes (LibreTranslate's frontend settings list them), for the file picker.
async function loadFileTypes() {
  try {
    const settings = await api("/libretranslate/frontend/settings");
    const types = settings.supportedFilesFormat || [];
    if (!types.length) return;
    $("file").accept = types.join(",");
    $("file-types").textContent = types.join(", ");
  } catch (err) {
    // the picker then offers every file; the server still says which types it takes
  }
}

$("form").addEventListener("submit", translate);
$("source").addEventListener("change", fillTargets);
$("target").addEventListener("change", describeRoute);
$("text").addEventListener("keydown", (e) => { if (e.key === "Enter" && e.ctrlKey) translate(e); });
$("glossary").addEventListener("keydown", (e) => { if (e.key === "Enter" && e.ctrlKey) translate(e); });
$("format").addEventListener("change", formatChanged);
$("file-form").addEventListener("submit", translateFile);
$("file").addEventListener("change", () => { showFileError(""); clearDownload(); $("file-status").textContent = ""; });
formatChanged();
loadLanguages();
loadFileTypes();
