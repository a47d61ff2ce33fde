// hekate console script: reads the JSON API and the live event stream, draws the
// pipeline table and wiring, sandbox outputs (cbuf charts), alerts, whisper graphs and
// LovebeatInput's services and HostMonitorFilter's hosts.
// hekate's own code; no libraries.
"use strict";

const TOKEN = new URLSearchParams(location.search).get("token");
const withToken = (url) => TOKEN ? url + (url.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(TOKEN) : url;
const getJSON = (url) => fetch(withToken(url)).then((r) => { if (!r.ok) throw new Error(url + ": " + r.status); return r.json(); });
const el = (tag, attrs = {}, ...kids) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  for (const k of kids) e.append(k);
  return e;
};
const SVGNS = "http://www.w3.org/2000/svg";
const svgEl = (tag, attrs = {}) => {
  const e = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  return e;
};
const fmtTime = (t) => new Date(t * 1000).toISOString().replace("T", " ").slice(0, 19);
const fmtNum = (v) => (v === null || v === undefined) ? "" : (Math.abs(v) >= 1e6 || (v !== 0 && Math.abs(v) < 1e-3) ? v.toExponential(3) : String(Math.round(v * 1000) / 1000));

// Live stream: one snapshot per DashboardOutput tick.
let lastVersion = -1;
function live(onSnapshot) {
  const status = document.getElementById("status");
  const es = new EventSource(withToken("/api/v1/events"));
  es.addEventListener("snapshot", (ev) => {
    const snap = JSON.parse(ev.data);
    status.textContent = (snap.draining ? "draining · " : "live · ") + fmtTime(snap.time) + " UTC";
    status.dataset.time = snap.time;
    onSnapshot(snap);
  });
  es.onerror = () => { status.textContent = "disconnected; retrying…"; };
}

// A line chart: one polyline per run of points, a circle per point carrying its time
// and value (data-t, data-v), axis labels and a legend.
const COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"];
function drawChart(series, opts = {}) {
  const W = opts.width || 560, H = opts.height || 220, L = 60, R = 10, T = 10, B = 28;
  const svg = svgEl("svg", { width: W, height: H + 18 * series.length, class: "chart-svg", viewBox: `0 0 ${W} ${H + 18 * series.length}` });
  const pts = series.flatMap((s) => s.points.filter((p) => p[0] !== null));
  const times = series.flatMap((s) => s.points.map((p) => p[1]));
  let lo = Math.min(0, ...pts.map((p) => p[0])), hi = Math.max(...pts.map((p) => p[0]));
  if (!pts.length) { lo = 0; hi = 1; } else if (hi <= lo) hi = lo + 1;
  const t0 = Math.min(...times), t1 = Math.max(t0 + 1, ...times);
  const x = (t) => L + (t - t0) / (t1 - t0) * (W - L - R);
  const y = (v) => T + (H - T - B) - (v - lo) / (hi - lo) * (H - T - B);
  svg.append(svgEl("line", { x1: L, y1: T, x2: L, y2: H - B, stroke: "#999" }), svgEl("line", { x1: L, y1: H - B, x2: W - R, y2: H - B, stroke: "#999" }));
  const label = (tx, ax, ay, anchor) => { const e = svgEl("text", { x: ax, y: ay, "text-anchor": anchor, "font-size": 11 }); e.textContent = tx; svg.append(e); };
  label(fmtNum(hi) + (opts.unit ? " " + opts.unit : ""), L - 4, T + 8, "end");
  label(fmtNum(lo), L - 4, H - B, "end");
  if (times.length) { label(fmtTime(t0).slice(5, 16), L, H - B + 14, "start"); label(fmtTime(t1).slice(5, 16), W - R, H - B + 14, "end"); }
  series.forEach((s, i) => {
    const color = COLORS[i % COLORS.length];
    let run = [];
    const flush = () => { if (run.length > 1) svg.append(svgEl("polyline", { points: run.join(" "), fill: "none", stroke: color, "stroke-width": 1.5 })); run = []; };
    for (const [v, t] of s.points) {
      if (v === null) { flush(); continue; }
      run.push(`${x(t).toFixed(1)},${y(v).toFixed(1)}`);
      svg.append(svgEl("circle", { class: "pt", cx: x(t).toFixed(1), cy: y(v).toFixed(1), r: 2, fill: color, "data-series": s.name, "data-t": t, "data-v": v }));
    }
    flush();
    const ly = H + 18 * i + 4;
    svg.append(svgEl("rect", { x: L, y: ly, width: 10, height: 10, fill: color }));
    label(s.name, L + 14, ly + 9, "start");
  });
  return svg;
}

// Pipeline page.
function drawWiring(plugins) {
  const svg = document.getElementById("wiring");
  const cols = [["Input"], ["Router"], ["Filter"], ["Output"]];
  const groups = cols.map(([k]) => plugins.filter((p) => p.kind === k));
  const rows = Math.max(1, ...groups.map((g) => g.length));
  const W = svg.clientWidth || 900, rowH = 26, H = rows * rowH + 10;
  svg.setAttribute("height", H);
  svg.replaceChildren();
  const colX = (i) => 10 + i * (W - 20) / 4, boxW = (W - 20) / 4 - 40;
  const pos = {};
  groups.forEach((g, ci) => g.forEach((p, ri) => {
    const yy = 5 + ri * rowH + (ci === 1 ? (rows - 1) * rowH / 2 : 0);
    pos[p.name] = [colX(ci), yy];
    const r = svgEl("rect", { x: colX(ci), y: yy, width: boxW, height: 20, rx: 3, fill: p.state === "running" ? "#e8f5e9" : "#ffebee", stroke: "#90a4ae", "data-plugin": p.name });
    const t = svgEl("text", { x: colX(ci) + 6, y: yy + 14, "font-size": 12 });
    t.textContent = `${p.name} (${p.type})`;
    svg.append(r, t);
  }));
  const router = groups[1][0];
  if (!router) return;
  const [rx, ry] = pos[router.name];
  const link = (x1, y1, x2, y2) => svg.prepend(svgEl("line", { x1, y1, x2, y2, stroke: "#b0bec5", class: "wire" }));
  groups[0].forEach((p) => link(pos[p.name][0] + boxW, pos[p.name][1] + 10, rx, ry + 10));
  [...groups[2], ...groups[3]].forEach((p) => link(rx + boxW, ry + 10, pos[p.name][0], pos[p.name][1] + 10));
}

function pipelinePage() {
  const body = document.querySelector("#plugins tbody");
  const render = (snap) => {
    for (const p of snap.plugins) {
      let tr = body.querySelector(`tr[data-plugin="${CSS.escape(p.name)}"]`);
      if (!tr) {
        tr = el("tr", { "data-plugin": p.name });
        for (const c of ["name", "type", "kind", "state", "matcher", "processed", "rate", "injected", "dropped", "decode_failures", "restarts", "queue", "last_error"]) tr.append(el("td", { class: c }));
        body.append(tr);
      }
      const cell = (c) => tr.querySelector("td." + c);
      cell("name").textContent = p.name; cell("type").textContent = p.type; cell("kind").textContent = p.kind;
      cell("state").textContent = p.state; cell("state").className = "state state-" + p.state;
      cell("matcher").textContent = p.matcher || "";
      for (const c of ["processed", "injected", "dropped", "decode_failures", "restarts"]) { cell(c).textContent = p[c]; cell(c).classList.add("num"); }
      cell("rate").textContent = p.processed_per_second; cell("rate").classList.add("num");
      const q = cell("queue");
      if (p.queue_capacity) {
        const pct = Math.min(100, 100 * p.queue_length / p.queue_capacity);
        q.replaceChildren(el("div", { class: "bar" + (pct > 90 ? " full" : pct > 50 ? " warn" : ""), title: `${p.queue_length} / ${p.queue_capacity}` }, el("span", { style: `width:${pct}%` })));
        q.dataset.fill = pct.toFixed(1);
      }
      cell("last_error").textContent = p.last_error ? `${fmtTime(p.last_error.at)} ${p.last_error.message}` : "";
      cell("last_error").className = "last_error err";
    }
    drawWiring(snap.plugins);
  };
  getJSON("/api/v1/plugins").then(render);
  live(render);
}

// Sandbox outputs page.
async function outputsPage() {
  const box = document.getElementById("outputs");
  const refresh = async () => {
    const data = await getJSON("/api/v1/outputs");
    if (data.outputs.length) box.replaceChildren();
    for (const o of data.outputs) {
      const detail = await getJSON("/api/v1/outputs/" + encodeURIComponent(o.id));
      const sec = el("section", { class: "card output", "data-output": o.id, "data-type": o.payload_type });
      const link = el("a", { href: withToken("/api/v1/outputs/" + encodeURIComponent(o.id) + "/payload"), download: o.id }, "download");
      sec.append(el("h3", {}, `${o.logger}: ${o.name || "(unnamed)"} [${o.payload_type}] `, link), el("p", {}, `updated ${fmtTime(o.updated)} UTC · ${o.updates} updates`));
      const d = detail.data;
      if (d.cbuf) {
        const charts = el("div", { class: "charts" });
        d.cbuf.columns.forEach((c, i) => {
          const points = d.cbuf.values[i].map((v, j) => [v, d.cbuf.times[j]]);
          const title = `${c.name} (${c.unit}, ${c.aggregation})${d.cbuf.delta ? " · deltas" : ""}`;
          charts.append(el("div", { class: "chart", "data-column": c.name }, el("h4", {}, title), drawChart([{ name: c.name, points }], { unit: c.unit, width: 420, height: 180 })));
        });
        sec.append(charts);
      } else if (d.json !== undefined) {
        sec.append(el("pre", { class: "payload" }, JSON.stringify(d.json, null, 2)));
      } else {
        sec.append(el("pre", { class: "payload" }, d.text || ""));
      }
      box.append(sec);
    }
    const tb = document.querySelector("#terminations tbody");
    tb.replaceChildren(...data.terminations.map((t) => el("tr", {}, el("td", {}, fmtTime(t.time)), el("td", {}, t.plugin), el("td", {}, t.reason))));
  };
  await refresh();
  live((snap) => { if (snap.version !== lastVersion) { lastVersion = snap.version; refresh(); } });
}

// Alerts page.
function alertsPage() {
  const tb = document.querySelector("#alerts tbody");
  const refresh = async () => {
    const data = await getJSON("/api/v1/alerts");
    tb.replaceChildren(...data.alerts.map((a) => el("tr", { class: "alert" },
      el("td", {}, fmtTime(a.time)), el("td", { class: "source" }, a.source), el("td", { class: "severity sev-" + a.severity }, a.severity),
      el("td", { class: "id" }, a.id), el("td", { class: "text" }, a.text))));
  };
  refresh();
  live((snap) => { if (snap.version !== lastVersion) { lastVersion = snap.version; refresh(); } });
}

// Metrics page: a whisper tree from /metrics/find and graphs from /render.
function graphsPage() {
  const params = new URLSearchParams(location.search);
  const selected = new Set(params.getAll("target"));
  const form = document.getElementById("range");
  if (params.get("from")) { form.preset.value = "custom"; form.from.value = params.get("from"); }
  if (params.get("until")) form.until.value = params.get("until");
  const showSelected = () => document.getElementById("selected").replaceChildren(...[...selected].map((t) => el("code", { class: "target" }, t + " ")));
  const draw = async () => {
    showSelected();
    if (!selected.size) return;
    const from = form.preset.value === "custom" ? (form.from.value || "-1h") : form.preset.value;
    const until = form.until.value || "now";
    const q = new URLSearchParams({ from, until, format: "json", maxDataPoints: "600" });
    for (const t of selected) q.append("target", t);
    const data = await getJSON("/render?" + q.toString());
    const series = data.map((s) => ({ name: s.target, points: s.datapoints }));
    const graph = document.getElementById("graph");
    graph.replaceChildren(drawChart(series, { width: 760, height: 300 }));
    graph.dataset.series = series.length;
  };
  const branch = (path, into) => getJSON("/metrics/find?query=" + encodeURIComponent(path ? path + ".*" : "*")).then((nodes) => {
    const ul = el("ul");
    for (const n of nodes) {
      const li = el("li", { class: n.leaf ? "leaf" : "branch", "data-path": n.id }, n.text);
      li.addEventListener("click", (ev) => {
        ev.stopPropagation();
        if (n.leaf) { selected.has(n.id) ? selected.delete(n.id) : selected.add(n.id); draw(); }
        else if (!li.querySelector("ul")) branch(n.id, li);
      });
      ul.append(li);
    }
    into.append(ul);
  });
  form.addEventListener("submit", (ev) => { ev.preventDefault(); draw(); });
  document.getElementById("clear").addEventListener("click", () => { selected.clear(); document.getElementById("graph").replaceChildren(); showSelected(); });
  branch("", document.getElementById("tree"));
  draw();
  live(() => { if (selected.size && form.until.value === "") draw(); });
}

// Services page: the snapshot LovebeatInput publishes as the json output "Services".
function servicesPage() {
  const tmo = (t) => t === -1 ? "none" : t === -2 ? "auto (learning)" : t + " s";
  const refresh = async () => {
    const data = await getJSON("/api/v1/outputs");
    const o = data.outputs.find((x) => x.name === "Services" && x.payload_type === "json");
    if (!o) return;
    const snap = (await getJSON("/api/v1/outputs/" + encodeURIComponent(o.id))).data.json;
    document.querySelector("#views tbody").replaceChildren(...snap.views.map((v) => el("tr", { class: "view state-" + v.state, "data-view": v.name },
      el("td", {}, v.name), el("td", { class: "state" }, v.state.toUpperCase()), el("td", {}, el("code", {}, v.regexp)),
      el("td", {}, String(v.services)), el("td", {}, String(v.incident_number)))));
    document.querySelector("#services tbody").replaceChildren(...snap.services.map((s) => el("tr", { class: "service state-" + s.state, "data-service": s.name },
      el("td", {}, s.name), el("td", { class: "state" }, s.state.toUpperCase()),
      el("td", {}, s.last_beat > 0 ? fmtTime(s.last_beat) : "never"), el("td", {}, s.last_beat > 0 ? Math.max(0, Math.round(Date.now() / 1000 - s.last_beat)) + " s" : ""),
      el("td", {}, tmo(s.warning_timeout)), el("td", {}, tmo(s.error_timeout)), el("td", {}, s.views.join(", ")))));
  };
  refresh();
  live((snap) => { if (snap.version !== lastVersion) { lastVersion = snap.version; refresh(); } });
}

// Hosts page: the snapshot HostMonitorFilter publishes as the json output "Hosts": a row
// per host, then its RTT and metric graphs.
function hostsPage() {
  const levels = (h) => h.levels.filter((l) => l.level !== "ok").map((l) => l.metric + " " + l.level.toUpperCase() + " (" + fmtNum(l.value) + ")").join(", ") || "ok";
  const refresh = async () => {
    const data = await getJSON("/api/v1/outputs");
    const o = data.outputs.find((x) => x.name === "Hosts" && x.payload_type === "json");
    if (!o) return;
    const snap = (await getJSON("/api/v1/outputs/" + encodeURIComponent(o.id))).data.json;
    document.querySelector("#hosts tbody").replaceChildren(...snap.hosts.map((h) => el("tr", { class: "host state-" + h.state, "data-host": h.name },
      el("td", {}, h.name), el("td", { class: "state" }, h.state.toUpperCase()), el("td", {}, fmtTime(h.last_seen)),
      el("td", {}, Math.max(0, Math.round(Date.now() / 1000 - h.last_seen)) + " s"), el("td", {}, h.interval + " s"),
      el("td", { class: "rtt" }, h.rtt_ms === null ? "" : fmtNum(h.rtt_ms) + " ms"), el("td", { class: "levels" }, levels(h)))));
    document.getElementById("host-graphs").replaceChildren(...snap.hosts.map((h) => el("section", { class: "card", "data-host": h.name },
      el("h3", {}, h.name), el("div", { class: "charts" }, ...Object.entries(h.graphs).map(([name, points]) =>
        el("div", { class: "chart", "data-graph": name }, el("h4", {}, name), drawChart([{ name, points }], { width: 380, height: 160, unit: name === "rtt_ms" ? "ms" : "" })))))));
  };
  refresh();
  live((snap) => { if (snap.version !== lastVersion) { lastVersion = snap.version; refresh(); } });
}

({ pipeline: pipelinePage, outputs: outputsPage, alerts: alertsPage, graphs: graphsPage, services: servicesPage, hosts: hostsPage })[document.body.dataset.page]();
