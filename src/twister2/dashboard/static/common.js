/* Helpers shared by the dashboard's pages. Everything from the API is written with
   textContent or setAttribute, never as HTML. */
"use strict";

const T2 = {
  REFRESH_MS: 2000,

  el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  },

  svg(tag, attrs, ...children) {
    const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined) continue;
      if (key === "text") node.textContent = value;
      else node.setAttribute(key, String(value));
    }
    for (const child of children) if (child) node.append(child);
    return node;
  },

  clear(node) { while (node.firstChild) node.removeChild(node.firstChild); return node; },

  async getJSON(url) {
    const reply = await fetch(url, { headers: { Accept: "application/json" }, cache: "no-store" });
    let data = null;
    try { data = await reply.json(); } catch (e) { data = null; }
    return { status: reply.status, data };
  },

  bytes(n) {
    if (n === null || n === undefined) return "–";
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    while (Math.abs(n) >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
    return (i === 0 ? String(n) : n.toFixed(n < 10 ? 1 : 0)) + " " + units[i];
  },

  count(n) { return n === null || n === undefined ? "–" : Number(n).toLocaleString("en-US"); },

  seconds(s) {
    if (s === null || s === undefined) return "–";
    if (s < 1) return (s * 1000).toFixed(0) + " ms";
    if (s < 60) return s.toFixed(s < 10 ? 2 : 1) + " s";
    const m = Math.floor(s / 60), r = Math.round(s % 60);
    if (m < 60) return `${m} min ${r} s`;
    return `${Math.floor(m / 60)} h ${m % 60} min`;
  },

  time(t) {
    if (!t) return "–";
    const d = new Date(t * 1000);
    const pad = (x) => String(x).padStart(2, "0");
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
      `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  },

  clock(t) {
    if (!t) return "";
    const d = new Date(t * 1000);
    return d.toTimeString().slice(0, 8) + "." + String(d.getMilliseconds()).padStart(3, "0");
  },

  ago(t, now) {
    if (!t) return "–";
    const s = Math.max(0, now - t);
    return s < 1 ? "just now" : T2.seconds(s) + " ago";
  },

  badge(state) {
    return T2.el("span", { class: "badge state-" + String(state || "UNKNOWN").toLowerCase(), text: state || "UNKNOWN" });
  },

  /* A small line chart of values over time (an SVG polyline). */
  sparkline(points, key, label) {
    const w = 120, h = 28;
    const box = T2.svg("svg", { class: "spark", width: w, height: h, viewBox: `0 0 ${w} ${h}`, role: "img", "aria-label": label });
    if (!points || points.length === 0) return box;
    const values = points.map((p) => Number(p[key]) || 0);
    const times = points.map((p) => Number(p.time) || 0);
    const max = Math.max(...values, 1e-9), t0 = times[0], span = Math.max(times[times.length - 1] - t0, 1e-9);
    const xy = values.map((v, i) => {
      const x = points.length === 1 ? w / 2 : ((times[i] - t0) / span) * (w - 4) + 2;
      const y = h - 3 - (v / max) * (h - 6);
      return x.toFixed(1) + "," + y.toFixed(1);
    });
    box.append(T2.svg("polyline", { points: xy.join(" "), class: "spark-line" }));
    box.append(T2.svg("title", { text: label }));
    return box;
  },

  showOffline(error) {
    const banner = document.getElementById("offline");
    if (!banner) return;
    banner.hidden = !error;
    banner.textContent = error ? "Cannot reach the dashboard server: " + error : "";
  },
};
