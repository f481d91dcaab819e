// The rnnmt web page: plain JavaScript against the JSON API (GET /languages, POST /translate).
"use strict";
const $ = (id) => document.getElementById(id);
const AUTO = "auto"; // the source value that asks the server to detect each text's language
let pairs = []; // GET /languages pairs: {source, target, model, pivot, models, ...}, pivoted ones included
let names = {}; // language code -> name
let current = null; // the last translation item shown

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = !message;
}

async function api(path, options) {
  let response;
  try {
    response = await fetch(path, options);
  } catch (err) {
    throw new Error(`Could not reach the server (${err.message}).`);
  }
  let body = null;
  try { body = await response.json(); } catch (e) { body = null; }
  if (!response.ok) {
    const message = body && body.error && body.error.message;
    throw new Error(message || `The server answered ${response.status} ${response.statusText}.`);
  }
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

// One heatmap per sentence; a pivoted translation shows both legs, each under a caption.
function drawHeatmap(attention) {
  const box = $("heatmap");
  box.replaceChildren();
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

function select(index) {
  const alt = current.alternatives[index];
  $("output").textContent = alt.text;
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
  $("output").textContent = "";
  $("timing").textContent = "";
  $("alternatives").replaceChildren();
  $("heatmap").replaceChildren();
  showDetected(null);
  showPivot(null);
}

async function translate(event) {
  if (event) event.preventDefault();
  showError("");
  const beam = Number($("beam").value);
  const body = {
    text: $("text").value, source: $("source").value, target: $("target").value,
    beam_size: beam, n_best: Math.min(Number($("nbest").value), beam),
    return_scores: true, return_attention: true,
  };
  $("translate").disabled = true;
  try {
    const data = await api("/translate", {
      method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body),
    });
    const item = data.translations[0];
    const source = item.detected_language ? item.detected_language.language : body.source;
    current = { ...item, source, target: body.target };
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
    const models = item.models && item.models.length ? item.models : [data.model.name];
    $("timing").textContent = `${models.length > 1 ? "Models" : "Model"}: ${models.join(" → ")}, `
      + `${data.timing_ms.toFixed(0)} ms`;
    select(0);
  } catch (err) {
    showError(err.message);
    clearResult();
  } finally {
    $("translate").disabled = false;
  }
}

$("form").addEventListener("submit", translate);
$("source").addEventListener("change", fillTargets);
$("target").addEventListener("change", describeRoute);
$("text").addEventListener("keydown", (e) => { if (e.key === "Enter" && e.ctrlKey) translate(e); });
loadLanguages();
