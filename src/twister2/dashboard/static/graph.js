/* Draws a dataflow graph (nodes with their parallelism, edges labelled by operator) as SVG.
   Layout: a node's column is its longest path from a source (edges that close a cycle, as in
   iterations, are drawn as arcs and ignored for the columns). */
"use strict";

const T2Graph = {
  NODE_W: 168, NODE_H: 58, COL_GAP: 120, ROW_GAP: 46, PAD: 24,

  layout(nodes, edges) {
    const names = nodes.map((n) => n.name);
    const out = new Map(names.map((n) => [n, []]));
    for (const e of edges) if (out.has(e.from) && out.has(e.to)) out.get(e.from).push(e);
    /* find the edges that close cycles with a depth-first search */
    const back = new Set(), seen = new Set(), active = new Set();
    const visit = (n) => {
      seen.add(n); active.add(n);
      for (const e of out.get(n)) {
        if (active.has(e.to)) back.add(e);
        else if (!seen.has(e.to)) visit(e.to);
      }
      active.delete(n);
    };
    for (const n of names) if (!seen.has(n)) visit(n);
    /* longest path over the forward edges, in topological order */
    const indeg = new Map(names.map((n) => [n, 0]));
    for (const e of edges) if (!back.has(e) && indeg.has(e.to) && out.has(e.from)) indeg.set(e.to, indeg.get(e.to) + 1);
    const level = new Map(names.map((n) => [n, 0]));
    const queue = names.filter((n) => indeg.get(n) === 0);
    while (queue.length) {
      const n = queue.shift();
      for (const e of out.get(n)) {
        if (back.has(e)) continue;
        level.set(e.to, Math.max(level.get(e.to), level.get(n) + 1));
        indeg.set(e.to, indeg.get(e.to) - 1);
        if (indeg.get(e.to) === 0) queue.push(e.to);
      }
    }
    const columns = [];
    for (const n of names) {
      const c = level.get(n);
      (columns[c] = columns[c] || []).push(n);
    }
    const rows = Math.max(1, ...columns.map((c) => (c ? c.length : 0)));
    const height = rows * this.NODE_H + (rows - 1) * this.ROW_GAP;
    const pos = new Map();
    columns.forEach((col, c) => {
      if (!col) return;
      const used = col.length * this.NODE_H + (col.length - 1) * this.ROW_GAP;
      col.forEach((n, r) => {
        pos.set(n, {
          x: this.PAD + c * (this.NODE_W + this.COL_GAP),
          y: this.PAD + 14 + (height - used) / 2 + r * (this.NODE_H + this.ROW_GAP),
        });
      });
    });
    return {
      pos, back,
      width: this.PAD * 2 + columns.length * this.NODE_W + Math.max(0, columns.length - 1) * this.COL_GAP,
      height: this.PAD * 2 + 28 + height + (back.size ? 40 : 0),
    };
  },

  draw(svg, graph, stragglerTasks) {
    T2.clear(svg);
    const nodes = graph.nodes || [], edges = graph.edges || [];
    if (nodes.length === 0) { svg.setAttribute("width", 0); svg.setAttribute("height", 0); return; }
    const { pos, back, width, height } = this.layout(nodes, edges);
    svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
    svg.setAttribute("width", width);
    svg.setAttribute("height", height);
    const defs = T2.svg("defs", {},
      T2.svg("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 8, markerHeight: 8, orient: "auto-start-reverse" },
        T2.svg("path", { d: "M0,0 L10,5 L0,10 z", class: "arrow-head" })));
    svg.append(defs);
    const W = this.NODE_W, H = this.NODE_H;
    edges.forEach((e, i) => {
      const a = pos.get(e.from), b = pos.get(e.to);
      if (!a || !b) return;
      let d, lx, ly;
      if (back.has(e) || a.x >= b.x) {
        const x1 = a.x + W / 2, x2 = b.x + W / 2, y = Math.max(a.y, b.y) + H;
        const dip = y + 34 + (i % 3) * 8;
        d = `M${x1},${a.y + H} C${x1},${dip} ${x2},${dip} ${x2},${b.y + H + 2}`;
        lx = (x1 + x2) / 2; ly = dip - 4;
      } else {
        const x1 = a.x + W, y1 = a.y + H / 2, x2 = b.x - 2, y2 = b.y + H / 2, mid = (x1 + x2) / 2;
        d = `M${x1},${y1} C${mid},${y1} ${mid},${y2} ${x2},${y2}`;
        lx = mid; ly = (y1 + y2) / 2 - 8;
      }
      const g = T2.svg("g", { class: "edge", "data-op": e.op, "data-from": e.from, "data-to": e.to });
      g.append(T2.svg("path", { d, class: "edge-line", "marker-end": "url(#arrow)" }));
      const traffic = [e.values ? T2.count(e.values) + " values" : "", e.bytes ? T2.bytes(e.bytes) : ""].filter(Boolean).join(", ");
      g.append(T2.svg("text", { x: lx, y: ly, class: "edge-label", "text-anchor": "middle", text: e.op }));
      if (traffic) g.append(T2.svg("text", { x: lx, y: ly + 14, class: "edge-traffic", "text-anchor": "middle", text: traffic }));
      g.append(T2.svg("title", { text: `${e.name}: ${e.op} ${e.from} → ${e.to}, ${T2.count(e.values)} values, ${T2.bytes(e.bytes)}` +
        (e.runs ? `, ${T2.count(e.runs)} reports, ${T2.seconds(e.seconds || 0)} in all` : "") }));
      svg.append(g);
    });
    for (const n of nodes) {
      const p = pos.get(n.name);
      const slow = stragglerTasks && stragglerTasks.has(n.name);
      const g = T2.svg("g", { class: "node" + (slow ? " node-slow" : ""), "data-name": n.name, transform: `translate(${p.x},${p.y})` });
      g.append(T2.svg("rect", { width: W, height: H, rx: 8, ry: 8, class: "node-box" }));
      const label = n.name.length > 22 ? n.name.slice(0, 21) + "…" : n.name;
      g.append(T2.svg("text", { x: W / 2, y: 24, class: "node-name", "text-anchor": "middle", text: label }));
      g.append(T2.svg("text", { x: W / 2, y: 43, class: "node-par", "text-anchor": "middle", text: `× ${n.parallelism}` + (slow ? "  ⚠ straggler" : "") }));
      g.append(T2.svg("title", { text: `${n.name}: parallelism ${n.parallelism}` }));
      svg.append(g);
    }
  },
};
