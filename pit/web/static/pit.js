// pit's dashboard: draws each page from pit serve's API and keeps it live. No framework, no
// build step: the DOM is made with `h` (never from HTML strings, so nothing a task prints can
// inject markup), lists are polled, and a run follows its WebSocket.

const csrf = document.querySelector('meta[name="pit-csrf"]').content;
const canSteer = document.querySelector('meta[name="pit-role"]').content === "full";
const main = document.getElementById("main");
const live = document.getElementById("live");
const POLL_MS = 3000;
const RECENT = 20;
const LOG_KEEP = 5000; // lines of a task drawn at most; the whole log is a download away
const GANTT_EVERY_MS = 1000; // the timeline of a live run is redrawn at most this often
const SVG = "http://www.w3.org/2000/svg";

// --- Building blocks ------------------------------------------------------------------------

function h(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  return dress(node, props, children);
}

function s(tag, props = {}, ...children) {
  return dress(document.createElementNS(SVG, tag), props, children);
}

function dress(node, props, children) {
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "text") node.textContent = value;
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat(Infinity)) {
    if (child !== undefined && child !== null && child !== false) node.append(child);
  }
  return node;
}

function say(message) {
  live.textContent = message;
}

async function api(path, { method = "GET", body } = {}) {
  const headers = method === "GET" ? {} : { "X-CSRF-Token": csrf };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method,
    headers,
    credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (response.status === 401) {
    location.assign(`/login?next=${encodeURIComponent(location.pathname)}`);
    throw new Error("logged out");
  }
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(data.error || `${response.status} ${response.statusText}`);
  return data;
}

function stateBadge(status, extra) {
  return h("span", { class: `state ${status}` }, status.replace("_", " "), extra);
}

function at(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  return date.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "medium" });
}

function inZone(iso, zone) {
  if (!iso) return "";
  try {
    const shown = new Date(iso).toLocaleString(undefined, {
      dateStyle: "medium",
      timeStyle: "short",
      timeZone: zone || undefined,
    });
    return zone ? `${shown} (${zone})` : shown;
  } catch {
    return at(iso);
  }
}

function seconds(start, end) {
  if (!start) return null;
  return ((end ? Date.parse(end) : Date.now()) - Date.parse(start)) / 1000;
}

function duration(total) {
  if (total === null || total === undefined) return "";
  if (total < 60) return `${total.toFixed(total < 10 ? 1 : 0)}s`;
  const minutes = Math.floor(total / 60);
  if (minutes < 60) return `${minutes}m ${Math.round(total % 60)}s`;
  return `${Math.floor(minutes / 60)}h ${minutes % 60}m`;
}

function problem(error) {
  return h("p", { class: "problem", role: "alert", text: String(error.message || error) });
}

function every(ms, work) {
  // Re-run `work` every `ms` while the tab is visible; at once when it shows again.
  let timer = null;
  const tick = async () => {
    clearTimeout(timer);
    try {
      await work();
    } finally {
      timer = setTimeout(tick, ms);
    }
  };
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden) tick();
  });
  return tick();
}

async function confirmed(question, action) {
  const dialog = h(
    "dialog",
    { "aria-labelledby": "confirm-title" },
    h("h2", { id: "confirm-title", text: question }),
    h(
      "form",
      { method: "dialog" },
      h(
        "menu",
        {},
        h("button", { value: "no", text: "Keep it" }),
        h("button", { value: "yes", class: "primary", text: action }),
      ),
    ),
  );
  document.body.append(dialog);
  dialog.showModal();
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => {
      dialog.remove();
      resolve(dialog.returnValue === "yes");
    });
  });
}

async function startRun(dag, button, params) {
  button.disabled = true;
  try {
    const request = params ? { method: "POST", body: { params } } : { method: "POST" };
    const started = await api(`/api/dags/${encodeURIComponent(dag)}/runs`, request);
    location.assign(`/runs/${encodeURIComponent(started.run_id)}`);
  } catch (error) {
    button.disabled = false;
    say(`${dag}: ${error.message}`);
    alert(`${dag}: ${error.message}`);
  }
}

function runNowButton(dag) {
  return h("button", {
    class: "primary",
    text: "Run now",
    disabled: !canSteer,
    title: canSteer ? `Start a run of ${dag.name} now` : "The read-only token cannot start runs",
    onclick: (event) => {
      const button = event.currentTarget;
      if (dag.params && dag.params.length) askParams(dag, button);
      else startRun(dag.name, button);
    },
  });
}

// A form of the DAG's params: what is left empty takes its default (the server fills it in).
function paramInput(param) {
  const id = `param-${param.name}`;
  const shown = param.default === null ? "required" : `default: ${param.default}`;
  let input;
  if (param.type === "enum") {
    input = h("select", { id, name: param.name },
      param.default === null ? null : h("option", { value: "", text: `(${shown})` }),
      ...param.choices.map((choice) => h("option", { value: choice, text: choice })));
  } else if (param.type === "bool") {
    input = h("select", { id, name: param.name },
      h("option", { value: "", text: `(${shown})` }),
      h("option", { value: "true", text: "true" }),
      h("option", { value: "false", text: "false" }));
  } else {
    const types = { int: "number", float: "number", date: "date", datetime: "datetime-local" };
    input = h("input", {
      id, name: param.name, type: types[param.type] || "text", placeholder: shown,
      step: param.type === "float" ? "any" : null, required: param.default === null,
    });
  }
  return h("p", {}, h("label", { for: id, text: `${param.name} (${param.type})` }), " ", input,
    param.description ? h("span", { class: "muted", text: ` ${param.description}` }) : null);
}

function askParams(dag, button) {
  const form = h("form", { method: "dialog" },
    ...dag.params.map(paramInput),
    h("menu", {},
      h("button", { value: "no", formnovalidate: true, text: "Keep it" }),
      h("button", { value: "yes", class: "primary", text: "Start the run" })));
  const dialog = h("dialog", { "aria-labelledby": "params-title" },
    h("h2", { id: "params-title", text: `Run ${dag.name} with` }), form);
  document.body.append(dialog);
  dialog.showModal();
  dialog.addEventListener("close", () => {
    const given = {};
    for (const param of dag.params) {
      const value = form.elements[param.name].value;
      if (value !== "") given[param.name] = value;
    }
    dialog.remove();
    if (dialog.returnValue === "yes") startRun(dag.name, button, given);
  });
}

// --- Overview -------------------------------------------------------------------------------

async function overview() {
  document.title = "DAGs · pit";
  const search = h("input", {
    type: "search",
    id: "filter",
    placeholder: "Filter by name, trigger or state",
    "aria-label": "Filter the DAGs",
  });
  const body = h("tbody");
  const table = h(
    "table",
    {},
    h(
      "thead",
      {},
      h(
        "tr",
        {},
        ["DAG", "Schedule", "Next run", "Triggers", `Last ${RECENT} runs`, "Active", ""].map(
          (title) => h("th", { scope: "col", text: title }),
        ),
      ),
    ),
    body,
  );
  const status = h("p", { class: "muted" });
  main.replaceChildren(h("h1", { text: "DAGs" }), h("div", { class: "toolbar" }, search), status, table);
  const applyFilter = () => {
    const words = search.value.toLowerCase().trim().split(/\s+/).filter(Boolean);
    for (const row of body.rows) {
      row.hidden = !words.every((word) => row.dataset.search.includes(word));
    }
  };
  search.addEventListener("input", applyFilter);
  await every(POLL_MS, async () => {
    try {
      const [{ dags }, { runs: active }] = await Promise.all([
        api(`/api/dags?recent=${RECENT}`),
        api("/api/runs?state=running&limit=100"),
      ]);
      const details = await Promise.all(active.map((run) => api(`/api/runs/${encodeURIComponent(run.id)}`)));
      body.replaceChildren(...dags.map((dag) => overviewRow(dag, details.filter((r) => r.dag_name === dag.name))));
      status.textContent = `${dags.length} DAG${dags.length === 1 ? "" : "s"} · ${active.length} active run${active.length === 1 ? "" : "s"}`;
      applyFilter();
    } catch (error) {
      status.replaceChildren(problem(error));
    }
  });
}

function overviewRow(dag, active) {
  const latest = dag.latest_run ? dag.latest_run.status : "never run";
  const row = h(
    "tr",
    { "data-dag": dag.name },
    h("th", { scope: "row" }, h("a", { href: `/dags/${encodeURIComponent(dag.name)}`, text: dag.name }), dag.paused ? h("span", { class: "muted", text: " (paused)" }) : null),
    h("td", { title: dag.schedule || undefined, text: dag.schedule_text || "—" }),
    h("td", { text: dag.paused ? "paused" : inZone(dag.next_run, dag.timezone) || "—" }),
    h("td", { text: dag.triggers.join(", ") || "manual" }),
    h("td", {}, squares(dag.recent_runs)),
    h("td", {}, active.map(progress)),
    h("td", {}, runNowButton(dag)),
  );
  row.dataset.search = [dag.name, dag.triggers.join(" "), latest, dag.paused ? "paused" : ""].join(" ").toLowerCase();
  return row;
}

function squares(runs) {
  const items = [...runs].reverse().map((run) =>
    h("a", {
      class: `square ${run.status}`,
      href: `/runs/${encodeURIComponent(run.id)}`,
      title: `${run.id}: ${run.status}`,
      "aria-label": `run ${run.id}: ${run.status}`,
    }),
  );
  return h("div", { class: "squares" }, items.length ? items : h("span", { class: "muted", text: "no runs yet" }));
}

function progress(run) {
  const done = run.tasks.filter((task) => !["pending", "queued", "running"].includes(task.status)).length;
  return h(
    "div",
    {},
    h("a", { href: `/runs/${encodeURIComponent(run.id)}`, text: `${done}/${run.tasks.length} ` }),
    h("progress", { max: run.tasks.length || 1, value: done, "aria-label": `run ${run.id}: ${done} of ${run.tasks.length} tasks done` }),
  );
}

// --- The task graph -------------------------------------------------------------------------

function drawGraph(layout, onSelect) {
  const margin = 8;
  const svg = s("svg", {
    class: "graph",
    width: layout.width + 2 * margin,
    height: layout.height + 2 * margin,
    role: "group",
    "aria-label": "Task graph",
  });
  const where = new Map(layout.nodes.map((node) => [node.name, node]));
  const edges = s("g", { transform: `translate(${margin},${margin})` });
  for (const edge of layout.edges) {
    const a = where.get(edge.source);
    const b = where.get(edge.target);
    if (!a || !b) continue;
    const x1 = a.x + a.width, y1 = a.y + a.height / 2, x2 = b.x, y2 = b.y + b.height / 2;
    const mid = (x1 + x2) / 2;
    edges.append(s("path", { class: "edge", d: `M${x1},${y1} C${mid},${y1} ${mid},${y2} ${x2},${y2}` }));
  }
  const nodes = s("g", { transform: `translate(${margin},${margin})` });
  const byName = new Map();
  for (const node of layout.nodes) {
    const label = s("text", { x: 26, y: node.height / 2 }, shorten(node.name, node.width));
    const glyph = s("text", { class: "glyph", x: 10, y: node.height / 2, "aria-hidden": "true" });
    const group = s(
      "g",
      {
        class: "node pending",
        transform: `translate(${node.x},${node.y})`,
        tabindex: onSelect ? 0 : undefined,
        role: onSelect ? "button" : "img",
        "aria-label": `${node.name}: pending`,
      },
      s("title", { text: node.name }),
      s("rect", { width: node.width, height: node.height }),
      glyph,
      label,
    );
    if (onSelect) {
      group.addEventListener("click", () => onSelect(node.name));
      group.addEventListener("keydown", (event) => {
        if (event.key === "Enter" || event.key === " ") {
          event.preventDefault();
          onSelect(node.name);
        }
      });
    }
    byName.set(node.name, { group, glyph });
    nodes.append(group);
  }
  svg.append(edges, nodes);
  const glyphs = { success: "✓", failed: "✗", running: "▶", queued: "◷", pending: "○", skipped: "–", upstream_failed: "⤓", cancelled: "⊘" };
  return {
    element: h("div", { class: "canvas" }, svg),
    paint(states, selected) {
      for (const [name, { group, glyph }] of byName) {
        const state = states.get(name) || "pending";
        const wanted = `node ${state}${name === selected ? " selected" : ""}`;
        if (group.getAttribute("class") !== wanted) {
          group.setAttribute("class", wanted);
          group.setAttribute("aria-label", `${name}: ${state.replace("_", " ")}`);
          glyph.textContent = glyphs[state] || "";
        }
      }
    },
  };
}

function shorten(name, width) {
  const room = Math.floor((width - 34) / 7.5);
  return name.length > room ? `${name.slice(0, Math.max(1, room - 1))}…` : name;
}

// --- DAG page -------------------------------------------------------------------------------

async function dagPage(name) {
  document.title = `${name} · pit`;
  const path = `/api/dags/${encodeURIComponent(name)}`;
  let dag, layout;
  try {
    [dag, layout] = await Promise.all([api(path), api(`${path}/graph`)]);
  } catch (error) {
    main.replaceChildren(h("h1", { text: name }), problem(error));
    return;
  }
  const graph = drawGraph(layout, null);
  const history = h("tbody");
  const more = h("button", { text: "Older runs", hidden: true });
  let next = null;
  const loadRuns = async (before) => {
    const page = await api(`/api/runs?dag=${encodeURIComponent(name)}&limit=25${before ? `&before=${encodeURIComponent(before)}` : ""}`);
    const rows = page.runs.map(historyRow);
    if (before) history.append(...rows);
    else history.replaceChildren(...rows);
    next = page.next;
    more.hidden = !next;
    return page.runs;
  };
  more.addEventListener("click", () => loadRuns(next));
  main.replaceChildren(
    h("div", { class: "title" }, h("h1", { text: dag.name }), dag.paused ? h("span", { class: "muted", text: "paused" }) : null, runNowButton(dag)),
    h("h2", { text: "Tasks" }),
    graph.element,
    h(
      "div",
      { class: "columns two" },
      h("section", { "aria-labelledby": "history-title" }, h("h2", { id: "history-title", text: "Runs" }),
        h("table", {}, h("thead", {}, h("tr", {}, ["Run", "State", "Trigger", "Started", "Duration"].map((t) => h("th", { scope: "col", text: t })))), history),
        more),
      h("section", { "aria-labelledby": "config-title" }, h("h2", { id: "config-title", text: "Configuration" }), dagConfig(dag)),
    ),
  );
  await every(POLL_MS, async () => {
    const runs = await loadRuns(null).catch(() => []);
    const latest = runs[0];
    if (latest) {
      const run = await api(`/api/runs/${encodeURIComponent(latest.id)}`).catch(() => null);
      if (run) graph.paint(new Map(run.tasks.map((task) => [task.name, task.status])), null);
    }
  });
}

function historyRow(run) {
  return h(
    "tr",
    {},
    h("td", { class: "mono" }, h("a", { href: `/runs/${encodeURIComponent(run.id)}`, text: run.id })),
    h("td", {}, stateBadge(run.status)),
    h("td", { text: run.trigger }),
    h("td", { text: at(run.started_at) }),
    h("td", { class: "num", text: duration(seconds(run.started_at, run.ended_at)) }),
  );
}

function dagConfig(dag) {
  const rows = [
    ["Schedule", dag.schedule ? `${dag.schedule_text} (${dag.schedule})` : "none"],
    ["Next run", dag.next_run ? inZone(dag.next_run, dag.timezone) : "—"],
    ["Timezone", dag.timezone || "this machine's"],
    ["Triggers", dag.triggers.join(", ") || "manual only"],
    ["Overlap", dag.overlap],
    ["Timeout", dag.timeout_seconds ? dag.timeout : "none"],
    ["Tasks", String(dag.task_count)],
  ];
  return h("dl", { class: "config" }, rows.map(([term, value]) => [h("dt", { text: term }), h("dd", { text: value })]));
}

// --- Run page -------------------------------------------------------------------------------

async function runPage(id) {
  document.title = `${id} · pit`;
  let run;
  try {
    run = await api(`/api/runs/${encodeURIComponent(id)}`);
  } catch (error) {
    main.replaceChildren(h("h1", { text: id }), problem(error));
    return;
  }
  const layout = await api(`/api/dags/${encodeURIComponent(run.dag_name)}/graph`).catch(() => null);
  const view = new RunView(run, layout);
  main.replaceChildren(view.element);
  view.update(run);
  view.follow();
}

class RunView {
  constructor(run, layout) {
    this.id = run.id;
    this.run = run;
    this.selected = null;
    this.logs = new Map(); // task -> lines received
    this.drawn = 0; // lines of the selected task taken into the viewer
    this.chunks = []; // [block, lines in it]: one block per frame's new lines, oldest first
    this.shown = 0; // lines in those blocks
    this.rows = new Map(); // task -> [its JSON, its table row]
    this.ganttAt = 0;
    this.pending = false;
    this.graph = layout ? drawGraph(layout, (name) => this.select(name)) : null;
    this.heading = h("div", { class: "title" });
    this.summary = h("p", { class: "muted" });
    this.runError = h("p", { class: "error-text" });
    this.tasks = h("tbody");
    this.gantt = h("div", { class: "gantt", role: "img", "aria-label": "Timeline of the task attempts" });
    this.search = h("input", { type: "search", placeholder: "Search the log", "aria-label": "Search the log" });
    this.followBox = h("input", { type: "checkbox", id: "follow", checked: true });
    this.download = h("a", { text: "Download the whole log", hidden: true });
    this.logTitle = h("strong", { text: "Choose a task to see its log" });
    this.earlier = h("p", { class: "muted earlier", hidden: true });
    this.pre = h("pre", { tabindex: 0, "aria-label": "Task log", "aria-live": "off" });
    this.search.addEventListener("input", () => this.redraw());
    this.followBox.addEventListener("change", () => this.followBox.checked && this.scrollDown());
    this.pre.addEventListener("scroll", () => {
      const atEnd = this.pre.scrollTop + this.pre.clientHeight >= this.pre.scrollHeight - 4;
      if (!atEnd && this.followBox.checked && !this.autoScrolling) this.followBox.checked = false;
    });
    this.element = h(
      "div",
      {},
      this.heading,
      this.summary,
      this.runError,
      this.graph ? [h("h2", { text: "Tasks" }), this.graph.element] : null,
      h("h2", { text: "Timeline" }),
      this.gantt,
      h(
        "div",
        { class: "columns two" },
        h("section", { "aria-labelledby": "tasks-title" }, h("h2", { id: "tasks-title", text: "Task list" }),
          h("table", {}, h("thead", {}, h("tr", {}, ["Task", "State", "Attempts", "Exit", "Duration", "Error"].map((t) => h("th", { scope: "col", text: t })))), this.tasks)),
        h("section", { "aria-labelledby": "log-title" }, h("h2", { id: "log-title", text: "Log" }),
          h("div", { class: "logs" },
            h("div", { class: "toolbar" }, this.logTitle, this.search,
              h("label", {}, this.followBox, " Follow"), this.download),
            this.earlier,
            this.pre)),
      ),
    );
  }

  follow() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const socket = new WebSocket(`${scheme}://${location.host}/api/runs/${encodeURIComponent(this.id)}/stream`);
    socket.addEventListener("open", () => {
      this.logs.clear(); // the stream replays every log from its start
      this.drawn = 0;
      this.redraw();
    });
    socket.addEventListener("message", (event) => {
      const message = JSON.parse(event.data);
      if (message.event === "run") this.update(message.data);
      else if (message.event === "logs") this.received(message.data);
      else if (message.event === "complete") say(`Run ${this.id} ended: ${message.data.status}`);
    });
    socket.addEventListener("close", (event) => {
      if (event.code !== 1000 && !this.ended()) setTimeout(() => this.follow(), 1000);
    });
  }

  ended() {
    return !["pending", "queued", "running"].includes(this.run.status);
  }

  update(run) {
    const was = this.run.status;
    this.run = run;
    const buttons = [];
    if (!this.ended()) {
      buttons.push(h("button", { class: "danger", text: "Cancel run", disabled: !canSteer, onclick: (e) => this.cancel(e.currentTarget) }));
    } else if (["failed", "cancelled"].includes(run.status)) {
      buttons.push(h("button", { class: "primary", text: "Re-run from failure", disabled: !canSteer, onclick: (e) => this.rerun(e.currentTarget) }));
    }
    this.heading.replaceChildren(
      h("h1", {}, h("a", { href: `/dags/${encodeURIComponent(run.dag_name)}`, text: run.dag_name }), ` · `, h("span", { class: "mono", text: run.id })),
      stateBadge(run.status),
      ...buttons,
    );
    const done = run.tasks.filter((task) => !["pending", "queued", "running"].includes(task.status)).length;
    const parts = [`${run.trigger} run`, `${done} of ${run.tasks.length} tasks done`];
    if (run.started_at) parts.push(`started ${at(run.started_at)}`);
    if (run.started_at) parts.push(`took ${duration(seconds(run.started_at, run.ended_at))}`);
    if (run.rerun_of) parts.push(`re-runs ${run.rerun_of}`);
    this.summary.textContent = parts.join(" · ");
    this.runError.textContent = run.error || "";
    if (this.graph) this.graph.paint(new Map(run.tasks.map((task) => [task.name, task.status])), this.selected);
    this.drawRows(run.tasks);
    if (this.ended() || Date.now() - this.ganttAt >= GANTT_EVERY_MS) {
      this.ganttAt = Date.now();
      this.drawGantt(run);
    }
    if (was !== run.status) say(`Run ${run.id}: ${run.status}`);
    if (this.selected === null) {
      const first = run.tasks.find((t) => t.status === "failed") || run.tasks.find((t) => t.status === "running") || run.tasks[0];
      if (first) this.select(first.name);
    }
  }

  drawRows(tasks) {
    // Only the rows of tasks that changed are made again: a 1,000-task run stays light.
    let before = null;
    for (const task of [...tasks].reverse()) {
      const key = JSON.stringify(task);
      const kept = this.rows.get(task.name);
      if (!kept || kept[0] !== key) {
        const row = this.taskRow(task);
        if (kept) kept[1].replaceWith(row);
        else this.tasks.insertBefore(row, before);
        this.rows.set(task.name, [key, row]);
      }
      before = this.rows.get(task.name)[1];
    }
  }

  taskRow(task) {
    const reused = task.reused_from ? h("span", { class: "reused", text: ` (reused from ${task.reused_from})` }) : null;
    return h(
      "tr",
      { class: task.name === this.selected ? "selected" : null, "data-task": task.name },
      h("th", { scope: "row" }, h("button", { text: task.name, "aria-pressed": String(task.name === this.selected), onclick: () => this.select(task.name) })),
      h("td", {}, stateBadge(task.status, reused)),
      h("td", { class: "num", text: String(task.attempts) }),
      h("td", { class: "num", text: task.exit_code === null ? "" : String(task.exit_code) }),
      h("td", { class: "num", text: duration(seconds(task.started_at, task.ended_at)) }),
      h("td", { class: "error-text", text: task.error || "" }),
    );
  }

  drawGantt(run) {
    const spans = [];
    for (const task of run.tasks) {
      const attempts = task.history.length
        ? task.history.map((a, i) => ({ ...a, status: i === task.history.length - 1 ? task.status : "failed" }))
        : task.started_at ? [{ number: 1, started_at: task.started_at, ended_at: task.ended_at, status: task.status }] : [];
      spans.push([task, attempts]);
    }
    const starts = spans.flatMap(([, attempts]) => attempts.map((a) => Date.parse(a.started_at)));
    if (!starts.length) {
      this.gantt.replaceChildren(h("p", { class: "muted", text: "No task has started yet." }));
      return;
    }
    const begin = Math.min(...starts);
    const end = Math.max(...spans.flatMap(([, attempts]) => attempts.map((a) => (a.ended_at ? Date.parse(a.ended_at) : Date.now()))), begin + 1);
    const rows = [];
    for (const [task, attempts] of spans) {
      if (!attempts.length) continue;
      const bars = attempts.map((a) => {
        const from = Date.parse(a.started_at);
        const to = a.ended_at ? Date.parse(a.ended_at) : Date.now();
        const bar = h("div", {
          class: `bar ${a.status}`,
          title: `${task.name} attempt ${a.number}: ${a.status}, ${duration((to - from) / 1000)}`,
        });
        // Through the CSSOM: the Content-Security-Policy refuses style attributes.
        bar.style.left = `${((from - begin) / (end - begin)) * 100}%`;
        bar.style.width = `${((to - from) / (end - begin)) * 100}%`;
        return bar;
      });
      rows.push(h("div", { class: "name", text: task.name }), h("div", { class: "lane" }, bars));
    }
    this.gantt.replaceChildren(...rows, h("div", { class: "axis" }, h("span", { text: at(new Date(begin).toISOString()) }), h("span", { text: duration((end - begin) / 1000) })));
  }

  async cancel(button) {
    if (!(await confirmed(`Cancel run ${this.id}?`, "Cancel the run"))) return;
    button.disabled = true;
    try {
      await api(`/api/runs/${encodeURIComponent(this.id)}/cancel`, { method: "POST" });
      say(`Cancelling run ${this.id}`);
    } catch (error) {
      button.disabled = false;
      alert(error.message);
    }
  }

  async rerun(button) {
    if (!(await confirmed(`Re-run ${this.id} from its failure? Tasks that succeeded are reused.`, "Re-run"))) return;
    button.disabled = true;
    try {
      const started = await api(`/api/runs/${encodeURIComponent(this.id)}/rerun`, { method: "POST", body: { from: "failed" } });
      location.assign(`/runs/${encodeURIComponent(started.run_id)}`);
    } catch (error) {
      button.disabled = false;
      alert(error.message);
    }
  }

  select(name) {
    this.selected = name;
    this.logTitle.textContent = name;
    this.download.hidden = false;
    this.download.href = `/api/runs/${encodeURIComponent(this.id)}/tasks/${encodeURIComponent(name)}/log`;
    this.download.setAttribute("download", `${this.id}-${name}.log`);
    for (const row of this.tasks.rows) {
      row.classList.toggle("selected", row.dataset.task === name);
      row.querySelector("button")?.setAttribute("aria-pressed", String(row.dataset.task === name));
    }
    if (this.graph) this.graph.paint(new Map(this.run.tasks.map((task) => [task.name, task.status])), name);
    this.drawn = 0;
    this.redraw();
  }

  received(lines) {
    for (const line of lines) {
      let kept = this.logs.get(line.task_name);
      if (!kept) this.logs.set(line.task_name, (kept = []));
      kept.push(line.message);
    }
    if (!this.pending) {
      this.pending = true; // draw once per frame, however fast lines arrive
      requestAnimationFrame(() => {
        this.pending = false;
        this.drawNew();
      });
    }
  }

  drawNew() {
    if (this.search.value.trim()) return this.redraw();
    const lines = this.logs.get(this.selected) || [];
    if (lines.length > this.drawn) {
      this.append(lines.slice(Math.max(this.drawn, lines.length - LOG_KEEP)));
      this.drawn = lines.length;
      this.scrollDown();
    }
  }

  append(lines) {
    // A block of its own for each batch, so the browser lays out only what is new, and the
    // oldest blocks go once more than LOG_KEEP lines are shown.
    this.pre.append(h("div", { text: lines.join("\n") }));
    this.chunks.push([this.pre.lastChild, lines.length]);
    this.shown += lines.length;
    while (this.chunks.length > 1 && this.shown - this.chunks[0][1] >= LOG_KEEP) {
      const [block, count] = this.chunks.shift();
      block.remove();
      this.shown -= count;
    }
    const hidden = (this.logs.get(this.selected) || []).length - this.shown;
    this.earlier.hidden = hidden <= 0;
    this.earlier.textContent = `${hidden} earlier lines are not shown: download the whole log.`;
  }

  redraw() {
    const lines = this.logs.get(this.selected) || [];
    const wanted = this.search.value.trim().toLowerCase();
    this.pre.replaceChildren();
    this.chunks = [];
    this.shown = 0;
    this.earlier.hidden = true;
    if (wanted) {
      const found = lines.filter((line) => line.toLowerCase().includes(wanted));
      this.pre.append(...found.slice(-LOG_KEEP).map((line) => h("div", {}, marked(line, wanted))));
      say(`${found.length} matching line${found.length === 1 ? "" : "s"}`);
    } else if (lines.length) {
      this.append(lines.slice(-LOG_KEEP));
    }
    this.drawn = lines.length;
    this.scrollDown();
  }

  scrollDown() {
    if (!this.followBox.checked) return;
    this.autoScrolling = true;
    this.pre.scrollTop = this.pre.scrollHeight;
    requestAnimationFrame(() => (this.autoScrolling = false));
  }
}

function marked(line, wanted) {
  const index = line.toLowerCase().indexOf(wanted);
  return h("span", {}, line.slice(0, index), h("mark", { text: line.slice(index, index + wanted.length) }), line.slice(index + wanted.length));
}

// --- Routing --------------------------------------------------------------------------------

const [, kind, name] = location.pathname.split("/").map(decodeURIComponent);
if (kind === "dags" && name) dagPage(name);
else if (kind === "runs" && name) runPage(name);
else overview();
