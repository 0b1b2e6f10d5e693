/* A job's page: failure first, then its dataflow, skew, workers and logs; refreshes itself
   while the job runs. */
"use strict";

(function () {
  const jobId = decodeURIComponent(location.pathname.split("/").filter(Boolean)[1] || "");
  const $ = (id) => document.getElementById(id);
  let timer = null;
  let lastLogCount = {};

  function facts(dl, pairs) {
    T2.clear(dl);
    for (const [k, v] of pairs) {
      if (v === null || v === undefined || v === "") continue;
      dl.append(T2.el("div", {}, T2.el("dt", { text: k }), T2.el("dd", {}, v instanceof Node ? v : String(v))));
    }
  }

  function renderFailure(f) {
    $("failure").hidden = !f;
    if (!f) return;
    $("failure-message").textContent = f.message || "";
    facts($("failure-facts"), [
      ["worker", f.worker_id], ["host", f.host], ["task", f.task], ["exception", f.exc_type]]);
    $("failure-traceback").textContent = f.traceback || "";
    $("failure-traceback").hidden = !f.traceback;
  }

  function renderStages(stages) {
    $("stages-section").hidden = stages.length === 0;
    const box = T2.clear($("stages"));
    for (const s of stages) {
      const pct = s.total ? Math.min(100, (100 * s.done) / s.total) : 0;
      const fill = T2.el("div", { class: "bar-fill" });
      fill.style.width = pct.toFixed(1) + "%";
      box.append(T2.el("div", { class: "stage", "data-stage": s.stage },
        T2.el("span", { class: "stage-name", text: s.stage }),
        T2.el("div", { class: "bar" }, fill),
        T2.el("span", { class: "stage-count", text: `${T2.count(s.done)} / ${T2.count(s.total)}` })));
    }
  }

  function renderOperations(edges) {
    $("operations").hidden = edges.length === 0;
    const ob = T2.clear(document.querySelector("#operations tbody"));
    for (const e of edges) {
      ob.append(T2.el("tr", { "data-name": e.name, "data-op": e.op, "data-values": e.values, "data-bytes": e.bytes, "data-runs": e.runs },
        T2.el("td", { text: e.name }), T2.el("td", { text: e.op }), T2.el("td", { text: `${e.from} → ${e.to}` }),
        T2.el("td", { class: "num", text: e.sources }), T2.el("td", { class: "num", text: e.targets }),
        T2.el("td", { class: "num", text: T2.count(e.runs) }), T2.el("td", { class: "num", text: T2.count(e.values) }),
        T2.el("td", { class: "num", text: T2.bytes(e.bytes) }),
        T2.el("td", { class: "num", text: e.seconds === undefined ? "–" : T2.seconds(e.seconds) }),
        T2.el("td", { class: "num", text: e.max_seconds === undefined ? "–" : T2.seconds(e.max_seconds) })));
    }
  }

  function renderSkew(detail) {
    const any = detail.tasks.length > 0;
    $("skew-section").hidden = !any;
    $("tasks-section").hidden = !any;
    if (!any) return;
    $("straggler-rule").textContent = `(busy > ${detail.straggler_factor}× their task's median)`;
    const sb = T2.clear(document.querySelector("#stragglers tbody"));
    for (const s of detail.stragglers) {
      sb.append(T2.el("tr", { class: "slow" },
        T2.el("td", { text: s.task }), T2.el("td", { class: "num", text: s.index }),
        T2.el("td", { class: "num", text: s.worker ?? "–" }), T2.el("td", { class: "num", text: T2.seconds(s.busy_s) }),
        T2.el("td", { class: "num", text: s.ratio ? s.ratio.toFixed(1) + "×" : "–" })));
    }
    $("stragglers").hidden = detail.stragglers.length === 0;
    $("no-stragglers").hidden = detail.stragglers.length !== 0;
    const pb = T2.clear(document.querySelector("#partitions tbody"));
    for (const p of detail.largest_partitions) {
      pb.append(T2.el("tr", {},
        T2.el("td", { text: p.task }), T2.el("td", { class: "num", text: p.index }),
        T2.el("td", { class: "num", text: p.worker ?? "–" }), T2.el("td", { class: "num", text: T2.bytes(p.bytes_in) }),
        T2.el("td", { class: "num", text: T2.count(p.values_in) }),
        T2.el("td", { class: "num", text: p.share === null ? "–" : (100 * p.share).toFixed(0) + "%" })));
    }
    const tb = T2.clear(document.querySelector("#tasks tbody"));
    for (const t of detail.tasks) {
      for (const i of t.instances) {
        tb.append(T2.el("tr", { class: i.straggler ? "slow" : null },
          T2.el("td", { text: t.task }), T2.el("td", { class: "num", text: i.index }),
          T2.el("td", { class: "num", text: i.worker ?? "–" }),
          T2.el("td", { class: "num", text: T2.count(i.values_in) }), T2.el("td", { class: "num", text: T2.count(i.values_out) }),
          T2.el("td", { class: "num", text: T2.bytes(i.bytes_in) }), T2.el("td", { class: "num", text: T2.bytes(i.bytes_out) }),
          T2.el("td", { class: "num" }, T2.seconds(i.busy_s), i.straggler ? T2.el("span", { class: "flag", text: " straggler" }) : null)));
      }
    }
  }

  function renderWorkers(detail) {
    const body = T2.clear(document.querySelector("#workers tbody"));
    const live = ["STARTING", "RUNNING"].includes(detail.job.state);
    for (const w of detail.workers) {
      const mem = T2.el("td", { class: "metric" }, T2.sparkline(w.metrics, "rss", `memory of worker ${w.id}`), T2.el("span", { text: T2.bytes(w.rss) }));
      const cpu = T2.el("td", { class: "metric" }, T2.sparkline(w.metrics, "cpu", `CPU of worker ${w.id}`), T2.el("span", { text: w.cpu === null ? "–" : w.cpu.toFixed(0) + " %" }));
      body.append(T2.el("tr", { "data-worker": w.id, "data-state": w.state },
        T2.el("td", { class: "num", text: w.id }), T2.el("td", { text: w.host || "–" }),
        T2.el("td", { class: "num", text: w.pid ?? "–" }), T2.el("td", {}, T2.badge(w.state)),
        T2.el("td", { title: T2.time(w.last_heartbeat), text: live ? T2.ago(w.last_heartbeat, detail.now) : T2.time(w.last_heartbeat) }),
        mem, cpu,
        T2.el("td", { class: "num", text: T2.count(w.log_lines) + (w.logs_dropped ? ` (+${w.logs_dropped} dropped)` : "") })));
    }
  }

  function renderLogs(detail) {
    const box = $("logs");
    if (detail.workers.every((w) => w.log_lines === 0)) {
      if (!box.querySelector(".note")) T2.clear(box).append(T2.el("p", { class: "note", text: "No log lines yet (workers ship what env.logger logs at INFO and up)." }));
      return;
    }
    box.querySelector(".note")?.remove();
    for (const w of detail.workers) {
      let item = box.querySelector(`details[data-worker="${w.id}"]`);
      if (!item) {
        item = T2.el("details", { "data-worker": w.id, open: w.id === 0 ? true : null },
          T2.el("summary", {}), T2.el("pre", { class: "log" }));
        box.append(item);
      }
      item.querySelector("summary").textContent = `worker ${w.id}: ${T2.count(w.log_lines)} lines` +
        (w.logs_dropped ? `, ${w.logs_dropped} dropped (rate limit)` : "") +
        (w.log_lines > w.logs.length ? ` (newest ${w.logs.length} shown)` : "");
      if (lastLogCount[w.id] === w.log_lines) continue;
      lastLogCount[w.id] = w.log_lines;
      const pre = T2.clear(item.querySelector("pre"));
      for (const line of w.logs) {
        pre.append(T2.el("span", { class: "log-line level-" + line.level.toLowerCase() },
          `${T2.clock(line.time)} ${line.level.padEnd(7)} ${line.logger}: ${line.message}\n`));
      }
    }
  }

  function render(detail) {
    const job = detail.job;
    document.title = "twister2 · " + job.job_id;
    $("crumb").textContent = job.job_id;
    $("title").textContent = job.name || job.job_id;
    const badge = T2.badge(job.state);
    $("state").className = badge.className;
    $("state").textContent = job.state;
    renderFailure(detail.failure);
    const warnings = detail.warnings || [];
    $("warnings").hidden = warnings.length === 0;
    const wl = T2.clear($("warning-list"));
    for (const w of warnings) wl.append(T2.el("li", { text: w }));
    const res = detail.resources || {};
    facts($("facts"), [
      ["job id", job.job_id], ["cluster", job.cluster], ["workers", job.workers],
      ["started", T2.time(job.start)], ["duration", job.duration === null ? null : T2.seconds(job.duration)],
      ["per worker", res.cpu ? `${res.cpu} cpu, ${res.memory_mb} MiB, ${res.disk_gb} GiB disk` : null],
      ["error", detail.failure ? null : job.error]]);
    $("kill").hidden = !detail.kill.running;
    $("kill-hint").textContent = "get it with: " + detail.kill.token_command;
    renderStages(detail.stages);
    const slowTasks = new Set(detail.stragglers.map((s) => s.task));
    T2Graph.draw($("graph"), detail.graph, slowTasks);
    $("graph-empty").hidden = detail.graph.nodes.length > 0;
    renderOperations(detail.graph.edges || []);
    $("graph-source").textContent = detail.graph.source === "graph" ? "(task graph)" :
      detail.graph.source === "operations" ? "(operations the job ran)" : "";
    renderSkew(detail);
    renderWorkers(detail);
    renderLogs(detail);
    $("page").hidden = false;
    document.body.dataset.loaded = "true";
    document.body.dataset.state = job.state;
  }

  async function refresh() {
    let reply;
    try {
      reply = await T2.getJSON("/api/jobs/" + encodeURIComponent(jobId));
      T2.showOffline(null);
    } catch (e) {
      T2.showOffline(String(e));
      return;
    }
    if (reply.status === 404) {
      $("missing").hidden = false;
      $("missing-text").textContent = (reply.data && reply.data.error) || "no such job";
      $("page").hidden = true;
      document.body.dataset.loaded = "true";
      return;
    }
    if (reply.status !== 200 || !reply.data) { T2.showOffline("HTTP " + reply.status); return; }
    render(reply.data);
    const live = ["STARTING", "RUNNING"].includes(reply.data.job.state);
    if (!live && timer !== null) { clearInterval(timer); timer = null; }
  }

  $("kill").addEventListener("submit", async (event) => {
    event.preventDefault();
    const result = $("kill-result");
    result.textContent = "killing…";
    const reply = await fetch("/api/jobs/" + encodeURIComponent(jobId) + "/kill", {
      method: "POST", headers: { "X-Twister2-Token": $("kill-token").value.trim() }, cache: "no-store" });
    let data = {};
    try { data = await reply.json(); } catch (e) { data = {}; }
    result.textContent = reply.ok ? "killed" : (data.error || "refused (HTTP " + reply.status + ")");
    result.className = "result " + (reply.ok ? "ok" : "bad");
    refresh();
  });

  refresh();
  timer = setInterval(refresh, T2.REFRESH_MS);
})();
