/* The jobs page: every job, newest first, filtered by state; refreshes itself. */
"use strict";

(function () {
  const body = document.querySelector("#jobs tbody");
  const table = document.getElementById("jobs");
  const empty = document.getElementById("empty");
  const buttons = document.querySelectorAll("#filters button");

  function wanted() {
    const match = /state=([A-Z_]+)/.exec(location.hash);
    return match ? match[1] : "";
  }

  function markFilter() {
    for (const b of buttons) b.classList.toggle("active", b.dataset.state === wanted());
  }

  function row(job, now) {
    const link = T2.el("a", { href: "/jobs/" + encodeURIComponent(job.job_id), class: "job-link", text: job.job_id });
    const warn = job.warnings ? T2.el("span", { class: "warn-dot", title: job.warnings + " problems in the event log", text: "!" }) : null;
    const duration = job.duration === null ? "–" : T2.seconds(job.duration);
    return T2.el("tr", { "data-job": job.job_id, "data-state": job.state },
      T2.el("td", {}, link, warn),
      T2.el("td", { text: job.name }),
      T2.el("td", {}, T2.badge(job.state)),
      T2.el("td", { text: job.cluster }),
      T2.el("td", { class: "num", text: job.workers }),
      T2.el("td", { text: T2.time(job.start) }),
      T2.el("td", { class: "num", text: duration }),
      T2.el("td", { class: "error-cell", title: job.error, text: job.error }));
  }

  async function refresh() {
    const state = wanted();
    let reply;
    try {
      reply = await T2.getJSON("/api/jobs" + (state ? "?state=" + state : ""));
      T2.showOffline(null);
    } catch (e) {
      T2.showOffline(String(e));
      return;
    }
    const data = reply.data || { jobs: [] };
    document.getElementById("logdir").textContent = data.log_dir ? "job logs: " + data.log_dir : "";
    T2.clear(body);
    for (const job of data.jobs) body.append(row(job, data.now));
    table.hidden = data.jobs.length === 0;
    empty.hidden = data.jobs.length !== 0;
    document.getElementById("empty-title").textContent = state ? "No " + state.toLowerCase() + " jobs" : "No jobs yet";
    document.body.dataset.loaded = "true";
  }

  for (const b of buttons) {
    b.addEventListener("click", () => {
      location.hash = b.dataset.state ? "state=" + b.dataset.state : "";
    });
  }
  window.addEventListener("hashchange", () => { markFilter(); refresh(); });
  markFilter();
  refresh();
  setInterval(refresh, T2.REFRESH_MS);
})();
