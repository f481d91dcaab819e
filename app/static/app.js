// The rnnmt web page: plain JavaScript against the JSON API (GET /languages, POST /translate).
"use strict";
const $ = (id) => document.getElementById(id);
let pairs = [];
let current = null; // the last translation item shown

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = !message;
}

async function api(path, options) {
  const response = await fetch(path, options);
  let body = null;
  try { body = await response.json(); } catch (e) { body = null; }
  if (!response.ok) {
    const message = body && body.error ? body.error.message : `${response.status} ${response.statusText}`;
    throw new Error(`Error ${response.status}: ${message}`);
  }
  return body;
}

function fillTargets() {
  const source = $("source").value;
  const targets = pairs.filter((p) => p.source === source).map((p) => p.target);
  $("target").replaceChildren(...targets.map((t) => new Option(t, t)));
}

async function loadLanguages() {
  try {
    const data = await api("/languages");
    pairs = data.pairs;
    const sources = [...new Set(pairs.map((p) => p.source))];
    $("source").replaceChildren(...sources.map((s) => new Option(s, s)));
    fillTargets();
    if (!pairs.length) showError("The server has no translation model loaded.");
  } catch (err) {
    showError(err.message);
  }
}

function drawHeatmap(attention) {
  const box = $("heatmap");
  box.replaceChildren();
  for (const sentence of attention || []) {
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
    box.appendChild(table);
  }
}

function select(index) {
  const alt = current.alternatives[index];
  $("output").textContent = alt.text;
  [...$("alternatives").children].forEach((li, i) => li.setAttribute("aria-selected", String(i === index)));
  drawHeatmap(alt.attention);
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
    current = data.translations[0];
    $("alternatives").replaceChildren(...current.alternatives.map((alt, i) => {
      const li = document.createElement("li");
      li.tabIndex = 0;
      li.setAttribute("role", "option");
      li.textContent = `${alt.text}  (score ${alt.score === null ? "–" : alt.score.toFixed(3)})`;
      li.addEventListener("click", () => select(i));
      li.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); select(i); } });
      return li;
    }));
    $("timing").textContent = `${data.model.name}, ${data.timing_ms.toFixed(0)} ms`;
    select(0);
  } catch (err) {
    showError(err.message);
      current = null; // never leave an old translation next to a new error
    $("output").textContent = "";
    $("timing").textContent = "";
    $("alternatives").replaceChildren();
    $("heatmap").replaceChildren();
  } finally {
    $("translate").disabled = false;
  }
}

$("form").addEventListener("submit", translate);
$("source").addEventListener("change", fillTargets);
$("text").addEventListener("keydown", (e) => { if (e.key === "Enter" && e.ctrlKey) translate(e); });
loadLanguages();
