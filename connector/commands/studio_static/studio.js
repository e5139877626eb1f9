// cdp-connector studio: every edit is sent to the local server, which compiles and maps
// with the connector's own code; this file only draws what it answers.
"use strict";

const token = document.querySelector('meta[name="studio-token"]').content;
const $ = (id) => document.getElementById(id);
const editor = $("editor");
const gutter = $("gutter");
let digest = "";
let sequence = 0;
let timer = null;
let problemLines = new Map();
let warningLines = new Map();

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

async function api(path, body) {
  const init = { headers: { "X-Studio-Token": token } };
  if (body !== undefined) {
    init.method = "POST";
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  const answer = await response.json();
  if (!response.ok) throw new Error(answer.error || response.statusText);
  return answer;
}

// #status: the latest preview; #save-status: the latest save (a preview never hides it).
function status(text, isError, id = "status") {
  $(id).textContent = text;
  $(id).className = isError ? "error" : "";
}

function drawGutter() {
  const count = editor.value.split("\n").length;
  gutter.replaceChildren();
  for (let n = 1; n <= count; n++) {
    const line = el("div", "ln", String(n));
    line.dataset.line = String(n);
    if (problemLines.has(n)) {
      line.classList.add("bad");
      line.title = problemLines.get(n).join("\n");
    } else if (warningLines.has(n)) {
      line.classList.add("warn");
      line.title = warningLines.get(n).join("\n");
    }
    gutter.appendChild(line);
  }
  gutter.scrollTop = editor.scrollTop;
}

function goToLine(n) {
  const lines = editor.value.split("\n");
  const start = lines.slice(0, n - 1).reduce((sum, line) => sum + line.length + 1, 0);
  editor.focus();
  editor.setSelectionRange(start, start + (lines[n - 1] || "").length);
  const lineHeight = parseFloat(getComputedStyle(editor).lineHeight) || 18;
  editor.scrollTop = Math.max(0, (n - 4) * lineHeight);
}

function drawProblems(problems, warnings) {
  problemLines = new Map();
  const list = $("problems");
  list.replaceChildren();
  for (const problem of problems) {
    const text = problem.line ? `line ${problem.line}: ${problem.message}` : problem.message;
    const item = el("li", "problem", text);
    if (problem.line) {
      item.dataset.line = String(problem.line);
      item.addEventListener("click", () => goToLine(problem.line));
      const known = problemLines.get(problem.line) || [];
      problemLines.set(problem.line, [...known, problem.message]);
    }
    list.appendChild(item);
  }
  $("problem-count").textContent = problems.length
    ? `(${problems.length})` : "none: compiles and fits the schema";
  $("problem-count").className = problems.length ? "" : "ok";
  warningLines = new Map();
  $("warnings").replaceChildren(...warnings.map((warning) => {
    const item = el("li", "warning", (warning.line ? `line ${warning.line}: ` : "") + warning.message);
    if (warning.line) {
      item.dataset.line = String(warning.line);
      item.addEventListener("click", () => goToLine(warning.line));
      warningLines.set(warning.line, [...(warningLines.get(warning.line) || []), warning.message]);
    }
    return item;
  }));
  drawGutter();
}

function drawOutcome(box, result) {
  box.replaceChildren();
  if (!result) {
    box.appendChild(el("span", "skipped", "(the mapping has problems: fix them to see events)"));
    return;
  }
  if (result.dead_letter) {
    box.appendChild(el("div", "dead-letter", `dead letter: ${result.dead_letter}`));
  } else if (result.skipped_by) {
    const why = result.skipped_by === "no-match" ? "no rule matched" : `rule '${result.skipped_by}'`;
    box.appendChild(el("span", "skipped", `skipped (${why})`));
  } else {
    const count = result.events.length;
    box.appendChild(el("div", "rule", `rule '${result.rule}' → ${count} event${count > 1 ? "s" : ""}`));
    for (const event of result.events) {
      box.appendChild(el("div", "event-head", `${event.type} (guest ${event.guest_key})`));
      let body = event.body;
      try { body = JSON.stringify(JSON.parse(body), null, 2); } catch (e) { /* shown raw */ }
      box.appendChild(el("pre", "event-body", body));
    }
  }
}

function drawFields(reference) {
  const box = $("fields");
  box.replaceChildren();
  for (const kind of reference) {
    const details = el("details");
    details.appendChild(el("summary", "", kind.type));
    const table = el("table");
    for (const row of kind.fields) {
      const tr = el("tr", row.required ? "required" : "optional");
      tr.appendChild(el("td", "path", row.path));
      tr.appendChild(el("td", "", row.required ? "required" : "optional"));
      tr.appendChild(el("td", "", row.type + (row.allowed ? ` [${row.allowed}]` : "")));
      table.appendChild(tr);
    }
    details.appendChild(table);
    box.appendChild(details);
  }
}

function recordTexts() {
  return [...document.querySelectorAll(".record-text")].map((area) => area.value);
}

async function preview() {
  const mine = ++sequence;
  try {
    const answer = await api("/api/preview", { text: editor.value, records: recordTexts() });
    if (mine !== sequence) return; // a newer edit is on its way
    drawProblems(answer.problems, answer.warnings);
    const boxes = document.querySelectorAll(".outcome");
    boxes.forEach((box, i) => drawOutcome(box, answer.results[i]));
    drawFields(answer.fields);
    document.body.dataset.previewed = String(mine);
    status(answer.problems.length ? "the mapping has problems" : "up to date", false);
  } catch (error) {
    if (mine === sequence) status(`preview failed: ${error.message}`, true);
  }
}

function changed() {
  clearTimeout(timer);
  timer = setTimeout(preview, 150);
}

function addRecord(text, index) {
  const card = el("div", "record");
  card.dataset.index = String(index);
  const area = el("textarea", "record-text");
  area.spellcheck = false;
  area.value = text;
  area.rows = Math.min(14, text.split("\n").length + 1);
  area.addEventListener("input", changed);
  card.appendChild(area);
  card.appendChild(el("div", "outcome"));
  const row = el("div", "test-row");
  const name = el("input", "case-name");
  name.placeholder = "test case name";
  name.value = `record ${index + 1}`;
  const button = el("button", "save-test", "Save as test case");
  button.type = "button";
  const saved = el("span", "saved");
  button.addEventListener("click", async () => {
    try {
      const answer = await api("/api/save-test", {
        text: editor.value, record: area.value, name: name.value,
      });
      saved.textContent = `saved to ${answer.test_file}` + (answer.note ? ` (${answer.note})` : "");
    } catch (error) {
      saved.textContent = `not saved: ${error.message}`;
    }
  });
  row.append(name, button, saved);
  card.appendChild(row);
  $("records").appendChild(card);
}

async function saveMapping() {
  try {
    const answer = await api("/api/save-mapping", { text: editor.value, digest });
    digest = answer.digest;
    status(`saved ${answer.saved}`, false, "save-status");
  } catch (error) {
    status(`not saved: ${error.message}`, true, "save-status");
  }
}

async function start() {
  const state = await api("/api/state");
  digest = state.digest;
  editor.value = state.text;
  $("mapping-path").textContent = state.mapping;
  $("context").textContent =
    `dialect ${state.dialect} · topic ${state.topic} · ` +
    (state.schema ? `records decoded with ${state.schema}` : "no schema: records mapped as JSON") +
    " · nothing is sent to the CDP";
  $("record-source").textContent = `(${state.records.length}; edit them in place)`;
  state.records.forEach(addRecord);
  editor.addEventListener("input", () => { drawGutter(); changed(); });
  editor.addEventListener("scroll", () => { gutter.scrollTop = editor.scrollTop; });
  editor.addEventListener("keydown", (event) => {
    if (event.key === "Tab") { // indent with spaces, as YAML needs
      event.preventDefault();
      editor.setRangeText("  ", editor.selectionStart, editor.selectionEnd, "end");
      drawGutter();
      changed();
    }
  });
  $("save-mapping").addEventListener("click", saveMapping);
  drawGutter();
  await preview();
}

start().catch((error) => status(`cannot start: ${error.message}`, true));
