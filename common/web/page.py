"""The single page: plain HTML, CSS and JavaScript, no build step. Every id,
label and message is put into the page as text (`textContent`), never as
HTML."""

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>multimodal-suite</title>
<style>
  body { font-family: system-ui, sans-serif; margin: 0 auto; max-width: 1100px;
         padding: 0 16px 40px; color: #222; }
  h1 { font-size: 1.4em; margin: 18px 0 4px; }
  h2 { font-size: 1.15em; margin: 26px 0 8px; border-bottom: 1px solid #ddd; }
  form { display: flex; flex-wrap: wrap; gap: 8px; align-items: center; }
  input[type=text] { flex: 1 1 320px; padding: 6px 8px; font-size: 1em; }
  input[type=number] { width: 4.5em; }
  .version, .note { color: #666; font-size: 0.9em; margin: 6px 0; }
  .error { color: #a00; background: #fee; padding: 6px 10px; margin: 8px 0;
           border-radius: 4px; }
  .error:empty { display: none; }
  #results { display: grid; gap: 10px; margin-top: 12px;
             grid-template-columns: repeat(auto-fill, minmax(160px, 1fr)); }
  .card { border: 1px solid #ddd; border-radius: 4px; padding: 6px;
          font-size: 0.85em; overflow-wrap: anywhere; }
  .card img { width: 100%; aspect-ratio: 1; object-fit: cover; display: block; }
  .bar { background: #eee; border-radius: 3px; height: 14px; width: 260px; }
  .bar > div { background: #4a7fd4; height: 100%; border-radius: 3px; }
  .row { display: flex; gap: 10px; align-items: center; margin: 4px 0; }
  .row .label { width: 180px; overflow-wrap: anywhere; }
  #frames img { height: 72px; margin-right: 4px; }
</style>
</head>
<body>
<h1>multimodal-suite</h1>
<div class="version" id="versions"></div>

<section id="search-section">
  <h2>Search images</h2>
  <form id="search-form">
    <input type="text" id="query" name="q" placeholder="a dog running on grass">
    <label>k <input type="number" id="k" min="1" max="100" value="8"></label>
    <label>re-rank depth <input type="number" id="depth" min="0" max="10000"
      placeholder="index"></label>
    <button type="submit" id="search-button">Search</button>
  </form>
  <form id="image-form">
    <label>or by an image <input type="file" id="image-file" accept="image/*"></label>
    <button type="submit" id="image-button">Search by image</button>
  </form>
  <div class="error" id="search-error"></div>
  <div class="version" id="search-version"></div>
  <div id="results"></div>
</section>

<section id="classify-section">
  <h2>Classify a clip</h2>
  <form id="classify-form">
    <input type="file" id="clip-file" accept=".mp4,.webm,.mkv,.avi,.mov,video/*">
    <label>k <input type="number" id="classify-k" min="1" max="100" value="5"></label>
    <button type="submit" id="classify-button">Classify</button>
  </form>
  <div class="error" id="classify-error"></div>
  <div class="version" id="classify-version"></div>
  <div id="classes"></div>
  <div id="frames"></div>
</section>

<script>
"use strict";
const $ = (id) => document.getElementById(id);

function element(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;
  if (className) node.className = className;
  return node;
}

async function call(url, options) {
  let response;
  try {
    response = await fetch(url, options);
  } catch (error) {
    throw new Error("The server cannot be reached: " + error.message);
  }
  let body = null;
  try { body = await response.json(); } catch (error) { body = null; }
  if (!response.ok) {
    throw new Error(body && body.error ? body.error
      : response.status + " " + response.statusText);
  }
  return body;
}

function showResults(answer) {
  const grid = $("results");
  grid.replaceChildren();
  $("search-version").textContent = "answered by index version " + answer.version;
  for (const result of answer.results) {
    const card = element("div", undefined, "card");
    card.dataset.id = result.id;
    if (result.image) {
      const link = element("a");
      link.href = result.image;
      link.target = "_blank";
      const image = element("img");
      image.src = result.image;
      image.alt = result.id;
      link.append(image);
      card.append(link);
    } else {
      card.append(element("div", "(not in the local gallery folder)", "note"));
    }
    const score = "score " + result.score.toFixed(3);
    card.append(element("div", "#" + result.rank + "  " + score, "rank"));
    card.append(element("div", result.id, "id"));
    grid.append(card);
  }
  grid.dataset.ready = "true";
}

async function runSearch(url, options) {
  $("search-error").textContent = "";
  $("results").dataset.ready = "false";
  try {
    showResults(await call(url, options));
  } catch (error) {
    $("results").replaceChildren();
    $("search-error").textContent = error.message;
  }
}

$("search-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const params = new URLSearchParams({ q: $("query").value, k: $("k").value });
  if ($("depth").value !== "") params.set("depth", $("depth").value);
  runSearch("/api/search?" + params.toString());
});

$("image-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const file = $("image-file").files[0];
  if (!file) { $("search-error").textContent = "Choose an image first."; return; }
  const params = new URLSearchParams({ k: $("k").value });
  runSearch("/api/search-image?" + params.toString(), { method: "POST", body: file });
});

$("classify-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  $("classify-error").textContent = "";
  $("classes").replaceChildren();
  $("frames").replaceChildren();
  $("classes").dataset.ready = "false";
  const file = $("clip-file").files[0];
  if (!file) { $("classify-error").textContent = "Choose a clip first."; return; }
  const params = new URLSearchParams({ k: $("classify-k").value, name: file.name });
  try {
    const reply = await call("/api/classify?" + params.toString(),
      { method: "POST", body: file });
    $("classify-version").textContent = "answered by model version " + reply.version;
    for (const item of reply.answer.top) {
      const row = element("div", undefined, "row");
      row.dataset.label = item.label;
      row.append(element("span", item.label, "label"));
      const bar = element("div", undefined, "bar");
      const fill = element("div");
      fill.style.width = (100 * item.score).toFixed(1) + "%";
      bar.append(fill);
      row.append(bar);
      row.append(element("span", (100 * item.score).toFixed(1) + "%"));
      $("classes").append(row);
    }
    if (!reply.answer.audio_present) {
      const note = "This clip has no sound: the model heard silence.";
      $("classes").append(element("div", note, "note"));
    }
    for (const source of reply.answer.frames) {
      const frame = element("img");
      frame.src = source;
      frame.alt = "a frame the model saw";
      $("frames").append(frame);
    }
    $("classes").dataset.ready = "true";
  } catch (error) {
    $("classify-error").textContent = error.message;
  }
});

(async () => {
  try {
    const info = await call("/api/info");
    const parts = [];
    if (info.search) parts.push("search index version " + info.search.version +
      " (" + info.search.size + " images)");
    else $("search-section").hidden = true;
    if (info.classify) parts.push("video model version " + info.classify.version +
      (info.classify.classes ? " (" + info.classify.classes + " classes)" : ""));
    else $("classify-section").hidden = true;
    $("versions").textContent = parts.join("; ");
  } catch (error) {
    $("versions").textContent = error.message;
  }
})();
</script>
</body>
</html>
"""
