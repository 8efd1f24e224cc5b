// The embedtune dashboard: plain JavaScript, no dependencies. Every view reads the public
// API (the same one the CLI and the Python client use); the task views follow the event
// streams for live updates, the others poll.
"use strict";

const KEY_STORAGE = "embedtune.apiKey";
const STATUSES = ["pending", "processing", "completed", "failed", "canceled"];
const FINISHED = new Set(["completed", "failed", "canceled"]);
const PAGE_SIZE = 50;
const POLL_MS = 1000;

// ---- API access --------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, code, detail) {
    super(detail);
    this.status = status;
    this.code = code;
  }
}

let keyPrompt = null;

function askForKey(refused) {
  // Concurrent 401s share one prompt.
  if (keyPrompt) return keyPrompt;
  const dialog = document.getElementById("key-dialog");
  document.getElementById("key-error").hidden = !refused;
  keyPrompt = new Promise((resolve) => {
    const form = document.getElementById("key-form");
    form.onsubmit = (event) => {
      event.preventDefault();
      const key = document.getElementById("key-input").value.trim();
      if (!key) return;
      localStorage.setItem(KEY_STORAGE, key);
      dialog.close();
      keyPrompt = null;
      updateKeyButton();
      resolve();
    };
  });
  dialog.showModal();
  return keyPrompt;
}

function authHeaders() {
  const key = localStorage.getItem(KEY_STORAGE);
  return key ? { Authorization: `Bearer ${key}` } : {};
}

async function request(method, path, body) {
  for (;;) {
    const init = { method, headers: authHeaders() };
    if (body instanceof FormData) init.body = body;
    else if (body !== undefined) {
      init.body = JSON.stringify(body);
      init.headers["Content-Type"] = "application/json";
    }
    const response = await fetch(path, init);
    if (response.status === 401) {
      await askForKey(Boolean(localStorage.getItem(KEY_STORAGE)));
      continue;
    }
    if (!response.ok) {
      let detail = response.statusText;
      let code = "http_error";
      try {
        const error = await response.json();
        detail = error.detail || detail;
        code = error.code || code;
      } catch (_) { /* not JSON: keep the status text */ }
      throw new ApiError(response.status, code, detail);
    }
    return response;
  }
}

async function api(method, path, body) {
  const response = await request(method, path, body);
  const data = await response.json();
  const total = response.headers.get("X-Total-Count");
  return total === null ? data : { items: data, total: Number(total) };
}

// ---- DOM helpers -------------------------------------------------------------------------

function h(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (name === "class") node.className = value;
    else node.setAttribute(name, value === true ? "" : value);
  }
  return fill(node, children);
}

// Like replaceChildren, skipping the null/false that conditional parts leave.
function fill(node, ...children) {
  node.replaceChildren();
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

function tick(value) {
  if (value === 0) return "0";
  const size = Math.abs(value);
  return size >= 100 ? value.toFixed(0) : size >= 1 ? value.toFixed(2) : value.toFixed(3);
}

const SVG_NS = "http://www.w3.org/2000/svg";

function s(tag, attrs, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, value);
  for (const child of children.flat()) node.append(child instanceof Node ? child : String(child));
  return node;
}

function toast(message, isError) {
  const box = document.getElementById("toast");
  box.textContent = message;
  box.className = isError ? "show error" : "show";
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { box.className = ""; }, isError ? 6000 : 3000);
}

function when(iso) {
  return iso ? new Date(iso).toLocaleString() : "—";
}

function duration(seconds) {
  if (!isFinite(seconds) || seconds < 0) return "—";
  const total = Math.round(seconds);
  const hours = Math.floor(total / 3600);
  const minutes = Math.floor((total % 3600) / 60);
  const rest = total % 60;
  if (hours) return `${hours}h ${minutes}m`;
  return minutes ? `${minutes}m ${rest}s` : `${rest}s`;
}

function badge(status) {
  return h("span", { class: `badge ${status}` }, status);
}

function progressBar(task) {
  const percent = Math.round(task.progress * 100);
  return h("div", { class: "progress", title: `${percent}%` },
    h("div", { class: `bar ${task.status}`, style: `width:${percent}%` }),
    h("span", {}, `${percent}%`));
}

function taskLink(id) {
  return h("a", { href: `#/tasks/${id}`, class: "mono" }, id);
}

function field(label, control) {
  return h("label", { class: "field" }, h("span", {}, label), control);
}

function table(headers, rows, empty) {
  if (!rows.length) return h("p", { class: "muted empty" }, empty);
  return h("table", {},
    h("thead", {}, h("tr", {}, headers.map((text) => h("th", {}, text)))),
    h("tbody", {}, rows));
}

async function act(action, success) {
  try {
    await action();
    if (success) toast(success);
  } catch (error) {
    toast(error.message, true);
  }
}

// ---- Charts (inline SVG) -----------------------------------------------------------------

const COLORS = ["#2563eb", "#db2777", "#059669", "#d97706", "#7c3aed", "#0891b2"];

function lineChart(series, { width = 560, height = 220, xLabel = "step", yLabel = "loss" }) {
  const points = series.flatMap((line) => line.points);
  const pad = { left: 48, right: 12, top: 22, bottom: 32 };
  const svg = s("svg", { viewBox: `0 0 ${width} ${height}`, class: "chart", role: "img" });
  if (!points.length) return svg;
  const xs = points.map((p) => p.x);
  const ys = points.map((p) => p.y);
  const [x0, x1] = [Math.min(...xs), Math.max(...xs) || 1];
  const [y0, y1] = [Math.min(0, ...ys), Math.max(...ys) || 1];
  const px = (x) => pad.left + ((x - x0) / (x1 - x0 || 1)) * (width - pad.left - pad.right);
  const py = (y) => height - pad.bottom - ((y - y0) / (y1 - y0 || 1)) * (height - pad.top - pad.bottom);
  for (let i = 0; i <= 4; i += 1) {
    const y = y0 + ((y1 - y0) * i) / 4;
    svg.append(s("line", { x1: pad.left, x2: width - pad.right, y1: py(y), y2: py(y), class: "grid" }));
    svg.append(s("text", { x: pad.left - 6, y: py(y) + 4, class: "tick", "text-anchor": "end" },
      tick(y)));
  }
  svg.append(s("text", { x: pad.left, y: height - 8, class: "tick" }, String(x0)));
  svg.append(s("text", { x: width - pad.right, y: height - 8, class: "tick", "text-anchor": "end" },
    String(x1)));
  svg.append(s("text", { x: (width + pad.left) / 2, y: height - 8, class: "axis", "text-anchor": "middle" },
    xLabel));
  svg.append(s("text", { x: 4, y: 11, class: "axis" }, yLabel));
  series.forEach((line, index) => {
    const color = COLORS[index % COLORS.length];
    const coords = line.points.map((p) => `${px(p.x).toFixed(1)},${py(p.y).toFixed(1)}`).join(" ");
    svg.append(s("polyline", { points: coords, fill: "none", stroke: color, "stroke-width": 2 }));
    if (line.points.length <= 30) {
      for (const p of line.points) svg.append(s("circle", { cx: px(p.x), cy: py(p.y), r: 2.5, fill: color }));
    }
  });
  return svg;
}

function barChart(before, after, { width = 560, height = 220 } = {}) {
  const names = [...new Set([...Object.keys(before || {}), ...Object.keys(after || {})])]
    .filter((name) => typeof (before || {})[name] === "number" || typeof (after || {})[name] === "number");
  const pad = { left: 40, right: 12, top: 12, bottom: 40 };
  const svg = s("svg", { viewBox: `0 0 ${width} ${height}`, class: "chart", role: "img" });
  const max = Math.max(1, ...names.flatMap((n) => [before?.[n] || 0, after?.[n] || 0]));
  const inner = height - pad.top - pad.bottom;
  const group = (width - pad.left - pad.right) / Math.max(names.length, 1);
  const bar = Math.min(28, group / 3);
  for (let i = 0; i <= 4; i += 1) {
    const y = height - pad.bottom - (inner * i) / 4;
    svg.append(s("line", { x1: pad.left, x2: width - pad.right, y1: y, y2: y, class: "grid" }));
    svg.append(s("text", { x: pad.left - 6, y: y + 4, class: "tick", "text-anchor": "end" },
      ((max * i) / 4).toFixed(2)));
  }
  names.forEach((name, index) => {
    const center = pad.left + group * index + group / 2;
    [[before, "before", -bar - 1], [after, "after", 1]].forEach(([values, cls, offset]) => {
      const value = values?.[name];
      if (typeof value !== "number") return;
      const barHeight = (value / max) * inner;
      const y = height - pad.bottom - barHeight;
      svg.append(s("rect", { x: center + offset, y, width: bar, height: barHeight, class: cls },
        s("title", {}, `${name} ${cls}: ${value.toFixed(4)}`)));
      svg.append(s("text", { x: center + offset + bar / 2, y: y - 3, class: "value", "text-anchor": "middle" },
        value.toFixed(3)));
    });
    svg.append(s("text", { x: center, y: height - pad.bottom + 16, class: "tick", "text-anchor": "middle" }, name));
  });
  return svg;
}

function legend(items) {
  return h("div", { class: "legend" }, items.map(([label, cls]) =>
    h("span", {}, h("i", { class: cls }), label)));
}

// ---- Views -------------------------------------------------------------------------------

const view = () => document.getElementById("view");
let stopPolling = () => {};

function poll(refresh) {
  let timer = null;
  let stopped = false;
  const tick = async () => {
    if (stopped) return;
    let again = true;
    try {
      again = (await refresh()) !== false;
    } catch (error) {
      toast(error.message, true);
    }
    if (again && !stopped) timer = setTimeout(tick, POLL_MS);
  };
  tick();
  return () => { stopped = true; clearTimeout(timer); };
}

// Reads a Server-Sent Events stream with fetch (EventSource cannot send the API key), and
// reconnects with Last-Event-ID so nothing is missed. onEvent(data, type) returning false
// ends it; onUnavailable() is called instead if the server has no such stream (older).
function followStream(path, onEvent, onUnavailable) {
  const controller = new AbortController();
  let lastId = null;
  let stopped = false;
  const dispatch = (type, lines) => {
    if (!lines.length) return true;
    return onEvent(JSON.parse(lines.join("\n")), type || "message") !== false;
  };
  const read = async () => {
    const headers = authHeaders();
    if (lastId !== null) headers["Last-Event-ID"] = lastId;
    const response = await fetch(path, { headers, signal: controller.signal });
    if (response.status === 404 || response.status === 405) return "unavailable";
    if (!response.ok || !response.body) throw new Error(`stream answered ${response.status}`);
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "", type = "", data = [];
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return "ended";
      buffer += value;
      const lines = buffer.split("\n");
      buffer = lines.pop();
      for (const raw of lines) {
        const line = raw.endsWith("\r") ? raw.slice(0, -1) : raw;
        if (line === "") {
          const more = dispatch(type, data);
          type = ""; data = [];
          if (!more) return "done";
        } else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
        else if (line.startsWith("event:")) type = line.slice(6).trim();
        else if (line.startsWith("id:")) lastId = line.slice(3).trim();
      }
    }
  };
  (async () => {
    while (!stopped) {
      try {
        const outcome = await read();
        if (outcome === "done") return;
        if (outcome === "unavailable") { if (!stopped) onUnavailable(); return; }
      } catch (error) {
        if (stopped) return;
      }
      await new Promise((resolve) => setTimeout(resolve, 1000));  // then reconnect
    }
  })();
  return () => { stopped = true; controller.abort(); };
}

// One refresh at a time; asked again meanwhile, it runs once more after.
function refresher(refresh) {
  let running = false;
  let again = false;
  return async function update() {
    if (running) { again = true; return; }
    running = true;
    try {
      do { again = false; await refresh(); } while (again);
    } catch (error) {
      toast(error.message, true);
    } finally {
      running = false;
    }
  };
}

// Refreshes a view at each event of the stream at `path`, falling back to polling.
function live(refresh, path, onEvent = () => true) {
  const update = refresher(refresh);
  let stopPoll = () => {};
  update();
  const stopStream = followStream(path, (data, type) => {
    const more = onEvent(data, type);
    update();
    return more;
  }, () => { stopPoll = poll(refresh); });
  return () => { stopStream(); stopPoll(); };
}

async function modelAndBatchOptions() {
  const [models, batches, deployments, feedback] = await Promise.all([
    api("GET", "/models?limit=1000"), api("GET", "/batches?limit=1000"), deploymentsOrNull(),
    api("GET", "/feedback").catch(() => null)]);
  return { models: models.items, batches: batches.items, blue: deployments?.blue?.model_id,
    feedbackPairs: feedback?.sessions_with_clicks || 0 };
}

// The base model a new task most likely wants: the live one, else the bundled one.
const BUNDLED_MODEL = "all-MiniLM-L6-v2";
const OPTIONS_EXAMPLE = '{"training": {"epochs": 1, "learning_rate": 5e-5, "batch_size": 32}}';

function defaultBaseModel(models, blue) {
  const ids = models.map((m) => m.id);
  return [blue, BUNDLED_MODEL].find((id) => id && ids.includes(id)) || ids[0] || "";
}

async function newTaskForm() {
  const { models, batches, blue: blueModel, feedbackPairs } = await modelAndBatchOptions();
  const model = h("select", { name: "model", required: true },
    models.map((m) => h("option", { value: m.id }, `${m.id}${m.name !== m.id ? ` (${m.name})` : ""}`)));
  model.value = defaultBaseModel(models, blueModel);
  // A task without a batch trains on the search feedback collected since the last release.
  const batch = h("select", { name: "batch" },
    h("option", { value: "" }, `— collected feedback (${feedbackPairs} sessions with clicks) —`),
    batches.map((b) => h("option", { value: b.id }, `${b.name} · ${b.num_examples} examples · ${b.id}`)));
  // Feedback when some is waiting, else the newest batch.
  batch.value = feedbackPairs || !batches.length ? "" : batches[0].id;
  const metadata = h("textarea", { name: "metadata", rows: 2, placeholder: OPTIONS_EXAMPLE });
  const blue = h("input", { type: "checkbox", name: "deploy_as_blue" });
  const wait = h("input", { type: "checkbox", name: "wait_on_conflict" });
  const form = h("form", { class: "card new-task" },
    h("h2", {}, "New fine-tuning task"),
    h("div", { class: "row" }, field("Base model", model), field("Training batch", batch)),
    field("Options (JSON, optional)", metadata),
    h("p", { class: "muted hint" }, "Training options go under ", h("code", {}, "training"),
      " (epochs, learning_rate, batch_size, max_steps, loss, validation_batch_id…), the "
      + "deployment gate under ", h("code", {}, "deploy"), "; every option and its range is in the ",
      h("a", { href: "/docs#/fine-tuning", target: "_blank" }, "API docs"), "."),
    h("div", { class: "row checks" },
      h("label", {}, blue, " Deploy as blue when better"),
      h("label", {}, wait, " Wait if another deployment is in progress"),
      h("span", { class: "spacer" }),
      h("button", { type: "submit", class: "primary" }, "Create task")));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    act(async () => {
      const body = { embedding_model_id: model.value, deploy_as_blue: blue.checked,
        wait_on_conflict: wait.checked };
      if (batch.value) body.batch_id = batch.value;
      if (metadata.value.trim()) {
        try { body.metadata = JSON.parse(metadata.value); } catch (error) {
          throw new Error(`Options are not valid JSON: ${error.message}`);
        }
      }
      const task = await api("POST", "/fine-tuning/task", body);
      location.hash = `#/tasks/${task.id}`;
    }, "Task created");
  });
  return form;
}

function taskActions(task, after) {
  const buttons = [];
  if (task.status === "pending" || task.status === "processing") {
    buttons.push(h("button", { type: "button", class: "danger", onclick: () =>
      confirm(`Cancel task ${task.id}? Its training stops and cannot be resumed.`) &&
      act(async () => { await api("PUT", `/fine-tuning/task/${task.id}/cancel`); await after(); },
        `Canceled ${task.id}`) }, "Cancel"));
  }
  if (["failed", "canceled", "pending"].includes(task.status)) {
    buttons.push(h("button", { type: "button", onclick: () =>
      act(async () => { await api("PUT", `/fine-tuning/task/${task.id}/restart`); await after(); },
        `Restarted ${task.id}`) }, "Restart"));
  }
  return h("span", { class: "actions" }, buttons);
}

async function tasksView(root, params) {
  const status = params.get("status") || "";
  const offset = Number(params.get("offset") || 0);
  const filter = h("select", { "aria-label": "Status filter", onchange: (event) => {
    location.hash = event.target.value ? `#/tasks?status=${event.target.value}` : "#/tasks";
  } }, h("option", { value: "" }, "All statuses"), h("option", { value: "pending,processing" }, "Active"),
  STATUSES.map((name) => h("option", { value: name }, name)));
  filter.value = status;
  const list = h("div", { class: "card" }, h("p", { class: "muted" }, "Loading…"));
  fill(root,
    await newTaskForm(),
    h("div", { class: "toolbar" }, h("h1", {}, "Tasks"), h("span", { class: "spacer" }),
      h("span", { class: "muted live" }, "live"), filter),
    list);
  const query = new URLSearchParams({ offset, limit: PAGE_SIZE });
  for (const name of status.split(",").filter(Boolean)) query.append("status", name);
  const refresh = async () => {
    const page = await api("GET", `/fine-tuning/task?${query}`);
    const rows = page.items.map((task) => h("tr", { "data-task": task.id },
      h("td", {}, taskLink(task.id)),
      h("td", {}, task.embedding_model_id),
      h("td", {}, badge(task.status)),
      h("td", {}, progressBar(task)),
      h("td", {}, when(task.created_at)),
      h("td", {}, task.best_model_id ? modelLink(task.best_model_id) : "—"),
      h("td", {}, taskActions(task, refresh))));
    const pager = h("div", { class: "pager" },
      h("span", { class: "muted" }, page.total
        ? `${offset + 1}–${offset + page.items.length} of ${page.total}` : ""),
      offset > 0 ? h("a", { href: pageLink(status, Math.max(0, offset - PAGE_SIZE)) }, "← Newer") : null,
      offset + PAGE_SIZE < page.total ? h("a", { href: pageLink(status, offset + PAGE_SIZE) }, "Older →") : null);
    fill(list,
      table(["Task", "Model", "Status", "Progress", "Created", "Fine-tuned model", ""], rows,
        status ? "No task with this status." : "No task yet: create one above."),
      pager);
  };
  return live(refresh, "/events/stream");
}

function pageLink(status, offset) {
  const query = new URLSearchParams();
  if (status) query.set("status", status);
  if (offset) query.set("offset", offset);
  return `#/tasks${query.toString() ? `?${query}` : ""}`;
}

function eta(task) {
  if (task.status !== "processing" || !task.started_at || task.progress <= 0) return null;
  const elapsed = (Date.now() - new Date(task.started_at).getTime()) / 1000;
  return duration((elapsed * (1 - task.progress)) / task.progress);
}

function lossSeries(metrics, live) {
  const curve = metrics?.loss_curve;
  if (Array.isArray(curve) && curve.length) {
    const trials = new Map();
    for (const point of curve) {
      const trial = point.trial ?? 0;
      if (!trials.has(trial)) trials.set(trial, []);
      trials.get(trial).push({ x: point.step, y: point.loss });
    }
    return [...trials.entries()].map(([trial, points]) => ({ name: `trial ${trial}`, points }));
  }
  return live.length ? [{ name: "live", points: live }] : [];
}

function evalSeries(metrics) {
  // The held-out MRR@10 at each evaluation during training, one line per trial.
  const trials = new Map();
  for (const point of metrics?.eval_curve || []) {
    const trial = point.trial ?? 0;
    if (!trials.has(trial)) trials.set(trial, []);
    trials.get(trial).push({ x: point.step, y: point["mrr@10"] });
  }
  return [...trials.entries()].map(([trial, points]) => ({ name: `trial ${trial}`, points }));
}

function evalCard(metrics) {
  const series = evalSeries(metrics);
  return h("div", { class: "card eval-card" }, h("h2", {}, "Held-out MRR@10 during training"),
    series.length ? lineChart(series, { yLabel: "MRR@10" })
      : h("p", { class: "muted empty" }, "No evaluation during training yet."));
}

function checkpointsCard(taskId, checkpoints) {
  const register = (name) => act(async () => {
    const model = await api("POST", `/fine-tuning/task/${taskId}/checkpoints/${name}/register`);
    toast(`Registered ${model.id}`);
  });
  return h("div", { class: "card checkpoints-card" }, h("h2", {}, "Checkpoints"),
    table(["Checkpoint", "Step", "MRR@10", "NDCG@10", "Loss", ""], (checkpoints || []).map((c) => h("tr", {},
      h("td", { class: "mono" }, c.name + (c.best ? " (best)" : "") + (c.last ? " (last)" : "")),
      h("td", {}, String(c.step)), h("td", {}, c.metrics["mrr@10"].toFixed(4)),
      h("td", {}, c.metrics["ndcg@10"].toFixed(4)), h("td", {}, c.loss == null ? "—" : c.loss.toFixed(4)),
      h("td", {}, h("button", { onclick: () => register(c.name) }, "Register as model")))),
    "Checkpoints are listed once training has completed."));
}

async function taskDetailView(root, taskId) {
  const curve = [];
  const header = h("div", { class: "toolbar" });
  const summary = h("div", { class: "card" });
  const charts = h("div", { class: "grid2" });
  const events = h("div", { class: "card" });
  fill(root,
    h("p", { class: "crumbs" }, h("a", { href: "#/tasks" }, "Tasks"), " / ", h("span", { class: "mono" }, taskId)),
    header, summary, charts, events);
  const refresh = async () => {
    const [task, history, metrics] = await Promise.all([
      api("GET", `/fine-tuning/task/${taskId}`),
      api("GET", `/fine-tuning/task/${taskId}/events`),
      api("GET", `/fine-tuning/task/${taskId}/metrics`)]);
    const training = task.training || {};
    if (typeof training.loss === "number" && training.step != null
      && !curve.some((p) => p.x === training.step)) curve.push({ x: training.step, y: training.loss });
    fill(header, h("h1", {}, "Task"), badge(task.status), h("span", { class: "spacer" }),
      taskActions(task, refresh));
    const steps = training.step != null
      ? `step ${training.step}${training.total_steps ? ` / ${training.total_steps}` : ""}` : null;
    const loss = typeof training.loss === "number" ? `loss ${training.loss.toFixed(4)}` : null;
    const remaining = task.estimated_finish_at
      ? `${duration(Math.max(0, (new Date(task.estimated_finish_at) - Date.now()) / 1000))}` : eta(task);
    const queued = task.queue_position != null ? `#${task.queue_position} in queue` : null;
    const starts = task.estimated_start_at ? `starts ${when(task.estimated_start_at)}` : null;
    fill(summary,
      h("div", { class: "progress-line" }, progressBar(task),
        h("span", { class: "muted" }, [queued, starts, steps, loss, remaining && `ETA ${remaining}`].filter(Boolean).join(" · "))),
      task.error ? h("p", { class: "error-box" }, h("strong", {}, task.error.code), `: ${task.error.message}`) : null,
      facts([
        ["Task", h("span", { class: "mono" }, task.id)],
        ["Base model", task.embedding_model_id],
        ["Batch", task.batch_id || "—"],
        ["Fine-tuned model", task.best_model_id ? h("span", {}, modelLink(task.best_model_id), " ",
          downloadLink(task.best_model_id, "⤓")) : "—"],
        ["Created", when(task.created_at)], ["Started", when(task.started_at)],
        ["Finished", when(task.finished_at)], ["Run time", runTime(task)],
        ["Examples", exampleCounts(metrics.metrics)], ["Attempts", String(task.attempts)],
        ["Deploy as blue", task.deploy_as_blue ? "yes" : "no"],
        ["Wait on conflict", task.wait_on_conflict ? "yes" : "no"],
        task.deployment ? ["Deployment", task.deployment.status + (task.deployment.detail ? ` — ${task.deployment.detail}` : "")] : null,
        ["Training options", trainingOptions(task.metadata)],
        otherMetadata(task.metadata) ? ["Metadata", h("code", {}, otherMetadata(task.metadata))] : null,
      ]));
    const m = metrics.metrics || {};
    const series = lossSeries(m, curve);
    fill(charts,
      h("div", { class: "card" }, h("h2", {}, "Loss"),
        series.length ? [lineChart(series, {}), series.length > 1 ? legend(series.map((line, i) => [line.name, `c${i % COLORS.length}`])) : null]
          : h("p", { class: "muted empty" }, "No loss reported yet.")),
      h("div", { class: "card" }, h("h2", {}, "Held-out evaluation"),
        m.before || m.after ? [barChart(m.before, m.after), legend([["before", "before"], ["after", "after"]]),
          typeof m.improved === "boolean" ? h("p", { class: m.improved ? "good" : "bad" },
            m.improved ? "The fine-tuned model beats the base model." : "The fine-tuned model is not better than the base model.") : null]
          : h("p", { class: "muted empty" }, FINISHED.has(task.status) ? "No evaluation was recorded." : "Available when training ends.")),
      evalCard(m), checkpointsCard(taskId, m.checkpoints));
    fill(events, h("h2", {}, "Events"),
      table(["When", "Event", "Detail"], history.slice().reverse().map((event) => h("tr", {},
        h("td", {}, when(event.created_at)), h("td", {}, event.kind),
        h("td", {}, h("code", {}, Object.keys(event.detail || {}).length ? JSON.stringify(event.detail) : "")))),
      "No event yet."));
    return !FINISHED.has(task.status);
  };
  // The stream replays the task's events from the first: the loss curve is drawn from its
  // progress events, live, from the first step.
  return live(refresh, `/fine-tuning/task/${encodeURIComponent(taskId)}/stream`, (data, type) => {
    if (type !== "message") return true;
    if (data.kind === "restarted") curve.length = 0;
    const point = data.detail || {};
    if (data.kind === "progress" && typeof point.loss === "number" && point.step != null
      && !curve.some((p) => p.x === point.step)) curve.push({ x: point.step, y: point.loss });
    return !FINISHED.has(data.kind);
  });
}

function modelLink(modelId) {
  return h("a", { href: `#/models/${encodeURIComponent(modelId)}`, class: "mono" }, modelId);
}

function runTime(task) {
  if (!task.started_at) return "—";
  const end = task.finished_at ? Date.parse(task.finished_at) : Date.now();
  return duration(Math.max(0, (end - Date.parse(task.started_at)) / 1000))
    + (task.finished_at ? "" : " so far");
}

function exampleCounts(metrics) {
  if (!metrics || metrics.train_examples == null) return "—";
  return `${metrics.train_examples} train · ${metrics.eval_examples ?? "?"} held out`;
}

function trainingOptions(metadata) {
  const options = metadata?.training;
  if (!options || !Object.keys(options).length) return "defaults";
  return h("span", { class: "options" }, Object.entries(options).map(([key, value]) =>
    h("code", {}, `${key}=${typeof value === "object" ? JSON.stringify(value) : value}`)));
}

function otherMetadata(metadata) {
  const rest = Object.fromEntries(Object.entries(metadata || {}).filter(([key]) => key !== "training"));
  return Object.keys(rest).length ? JSON.stringify(rest) : "";
}

async function modelDetailView(root, modelId) {
  const [model, deployments] = await Promise.all([
    api("GET", `/models/${encodeURIComponent(modelId)}`), deploymentsOrNull()]);
  const isBlue = deployments?.blue?.model_id === model.id;
  const m = model.metrics || {};
  fill(root,
    h("p", { class: "crumbs" }, h("a", { href: "#/models" }, "Models"), " / ", h("span", { class: "mono" }, model.id)),
    h("div", { class: "toolbar" }, h("h1", {}, model.name), isBlue ? h("span", { class: "badge blue" }, "blue") : null,
      h("span", { class: "spacer" }), h("span", { class: "actions" }, downloadLink(model.id, "Download"),
        deployments && !isBlue ? h("button", { type: "button", onclick: () =>
          act(async () => { await api("PUT", "/deployments/blue", { model_id: model.id }); route(); },
            `${model.id} is now blue`) }, "Make blue") : null)),
    h("div", { class: "card" }, facts([
      ["Model", h("span", { class: "mono" }, model.id)], ["Plugin", model.plugin],
      ["Fine-tuned from", model.parent_id ? modelLink(model.parent_id) : "—"],
      ["By task", model.task_id ? taskLink(model.task_id) : "—"], ["Created", when(model.created_at)],
      ["Examples", exampleCounts(m)],
    ])),
    h("div", { class: "card" }, h("h2", {}, "Held-out evaluation"),
      m.before || m.after ? [barChart(m.before, m.after), legend([["before", "before"], ["after", "after"]])]
        : h("p", { class: "muted empty" }, "No evaluation recorded for this model.")));
  return () => {};
}

function facts(pairs) {
  return h("dl", { class: "facts" }, pairs.filter(Boolean).map(([term, value]) =>
    h("div", {}, h("dt", {}, term), h("dd", {}, value))));
}

function downloadLink(modelId, label) {
  // A plain link works without auth; with a key the archive is fetched with its header.
  return h("a", { href: `/models/${modelId}/download`, download: `${modelId}.tar.gz`, onclick: (event) => {
    if (!localStorage.getItem(KEY_STORAGE)) return;
    event.preventDefault();
    act(async () => {
      const response = await request("GET", `/models/${modelId}/download`);
      const url = URL.createObjectURL(await response.blob());
      h("a", { href: url, download: `${modelId}.tar.gz` }).click();
      setTimeout(() => URL.revokeObjectURL(url), 10000);
    });
  } }, label);
}

async function batchesView(root) {
  const file = h("input", { type: "file", name: "file", accept: ".jsonl,.json,.txt", required: true });
  const name = h("input", { type: "text", name: "name", placeholder: "defaults to the file name" });
  const list = h("div", { class: "card" });
  const refresh = async () => {
    const page = await api("GET", "/batches?limit=1000");
    fill(list, table(["Batch", "Name", "Examples", "Created"], page.items.map((batch) =>
      h("tr", { "data-batch": batch.id }, h("td", { class: "mono" }, batch.id), h("td", {}, batch.name),
        h("td", {}, String(batch.num_examples)), h("td", {}, when(batch.created_at)))),
    "No batch yet: upload one above."));
  };
  const form = h("form", { class: "card" },
    h("h2", {}, "Upload a training batch"),
    h("p", { class: "muted" }, "A JSONL file, one example a line: ",
      h("code", {}, '{"query": "…", "positive": "…", "negative": "…"}'), " (negative is optional)."),
    h("div", { class: "row" }, field("File", file), field("Name", name),
      h("button", { type: "submit", class: "primary" }, "Upload")));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    act(async () => {
      const body = new FormData();
      body.append("file", file.files[0]);
      if (name.value.trim()) body.append("name", name.value.trim());
      const batch = await api("POST", "/batches", body);
      form.reset();
      await refresh();
      toast(`Uploaded ${batch.name}: ${batch.num_examples} examples`);
    });
  });
  fill(root, form, h("div", { class: "toolbar" }, h("h1", {}, "Batches")), list);
  await refresh();
  return () => {};
}

function headline(metrics) {
  const after = metrics?.after;
  if (!after) return "—";
  return Object.entries(after).filter(([, v]) => typeof v === "number").slice(0, 2)
    .map(([k, v]) => `${k} ${v.toFixed(3)}`).join(", ");
}

async function modelsView(root) {
  const page = await api("GET", "/models?limit=1000");
  const deployments = await deploymentsOrNull();
  const blue = deployments?.blue?.model_id;
  fill(root, h("div", { class: "toolbar" }, h("h1", {}, "Models")), h("div", { class: "card" },
    table(["Model", "Name", "Plugin", "From", "Task", "Quality (after)", "Created", ""], page.items.map((model) =>
      h("tr", { "data-model": model.id },
        h("td", { class: "mono id" }, modelLink(model.id), model.id === blue ? h("span", { class: "badge blue" }, "blue") : null),
        h("td", {}, model.name), h("td", {}, model.plugin), h("td", { class: "mono id" }, model.parent_id || "—"),
        h("td", { class: "clip", title: model.task_id || "" }, model.task_id ? taskLink(model.task_id) : "—"),
        h("td", {}, headline(model.metrics)),
        h("td", {}, when(model.created_at)),
        h("td", { class: "actions" }, downloadLink(model.id, "Download"),
          deployments && model.id !== blue ? h("button", { type: "button", onclick: () =>
            act(async () => { await api("PUT", "/deployments/blue", { model_id: model.id }); route(); },
              `${model.id} is now blue`) }, "Make blue") : null))),
    "No model registered.")));
  return () => {};
}

async function deploymentsOrNull() {
  try {
    return await api("GET", "/deployments");
  } catch (error) {
    if (error.status === 404) return null;
    throw error;
  }
}

async function deploymentsView(root) {
  const refresh = async () => {
    const state = await deploymentsOrNull();
    if (!state) {
      fill(root, h("h1", {}, "Deployments"),
        h("p", { class: "card muted" }, "This server does not serve models (no deployments API)."));
      return false;
    }
    const history = state.history || [];
    fill(root,
      h("div", { class: "toolbar" }, h("h1", {}, "Deployments"), h("span", { class: "spacer" }),
        h("button", { type: "button", disabled: history.length === 0, onclick: () =>
          act(async () => { await api("POST", "/deployments/rollback"); await refresh(); }, "Rolled back") },
        "Roll back to the previous blue")),
      h("div", { class: "card blue-card" }, h("h2", {}, "Blue (live) model"),
        state.blue ? facts([["Model", h("span", { class: "mono" }, state.blue.model_id)], ["Since", when(state.blue.since)]])
          : h("p", { class: "muted" }, "No model is live."),
        h("p", { class: "muted" }, "Serving ", h("code", {}, "POST /v1/embeddings"), " with ",
          h("code", {}, '"model": "blue"'), ". In memory: ", (state.loaded || []).join(", ") || "none", ".")),
      h("div", { class: "card" }, h("h2", {}, "History"),
        table(["Model", "Since", "Until"], history.map((entry) => h("tr", {},
          h("td", { class: "mono" }, entry.model_id), h("td", {}, when(entry.since)), h("td", {}, when(entry.until)))),
        "No earlier blue model.")));
    return true;
  };
  return poll(refresh);
}

// ---- Routing -----------------------------------------------------------------------------

async function route() {
  stopPolling();
  stopPolling = () => {};
  const [path, query] = (location.hash.slice(1) || "/tasks").split("?");
  const params = new URLSearchParams(query || "");
  const parts = path.split("/").filter(Boolean);
  const section = parts[0] || "tasks";
  for (const link of document.querySelectorAll("[data-nav]")) {
    link.classList.toggle("active", link.dataset.nav === section);
  }
  const root = view();
  try {
    if (section === "tasks" && parts[1]) stopPolling = await taskDetailView(root, decodeURIComponent(parts[1]));
    else if (section === "batches") stopPolling = await batchesView(root);
    else if (section === "models" && parts[1]) stopPolling = await modelDetailView(root, decodeURIComponent(parts[1]));
    else if (section === "models") stopPolling = await modelsView(root);
    else if (section === "deployments") stopPolling = await deploymentsView(root);
    else if (section === "feedback") stopPolling = await feedbackView(root);
    else stopPolling = await tasksView(root, params);
  } catch (error) {
    fill(root, h("p", { class: "error-box" }, error.message));
  }
}

function updateKeyButton() {
  const button = document.getElementById("forget-key");
  button.hidden = !localStorage.getItem(KEY_STORAGE);
}

document.getElementById("forget-key").addEventListener("click", () => {
  localStorage.removeItem(KEY_STORAGE);
  updateKeyButton();
  toast("API key removed from this browser");
});
window.addEventListener("hashchange", route);
updateKeyButton();
route();
