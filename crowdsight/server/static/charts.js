// Small SVG charts drawn by hand (no library, no build step): a time-series line chart and a
// zone-to-zone Sankey diagram. Every function returns a detached SVG element; callers swap it in.

const SVG_NS = "http://www.w3.org/2000/svg";

/** Create an SVG element with attributes. */
export function svgEl(tag, attrs = {}, text = null) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  if (text !== null) el.textContent = text;
  return el;
}

/** "Nice" tick values (about `count` of them) whose range covers [lo, hi] entirely. */
export function niceTicks(lo, hi, count = 5) {
  if (!(hi > lo)) hi = lo + 1;
  const raw = (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? raw;
  const ticks = [];
  const last = Math.ceil(hi / step - 1e-9) * step;
  for (let v = Math.floor(lo / step + 1e-9) * step; v <= last + step * 1e-9; v += step) {
    ticks.push(Number(v.toFixed(10)));
  }
  return ticks;
}

function fmtClock(ts_s, span_s) {
  const d = new Date(ts_s * 1000);
  const opts = span_s > 86400 * 2
    ? { month: "short", day: "numeric" }
    : span_s < 600
      ? { hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false }
      : { hour: "2-digit", minute: "2-digit", hour12: false };
  return d.toLocaleString([], opts);
}

/**
 * Line chart of several series over time.
 *
 * @param {Array<{name: string, color: string, points: Array<{t: number, v: number,
 *   lo?: number, hi?: number}>}>} series  t in epoch seconds; lo/hi draw a min–max band.
 * @param {{t0: number, t1: number, width?: number, height?: number, yLabel?: string}} opts
 * @returns {SVGSVGElement}
 */
export function lineChart(series, opts) {
  const width = opts.width ?? 720;
  const height = opts.height ?? 220;
  const m = { l: 44, r: 12, t: 10, b: 26 };
  const w = width - m.l - m.r;
  const h = height - m.t - m.b;
  const { t0, t1 } = opts;
  let vmax = 0;
  for (const s of series) for (const p of s.points) vmax = Math.max(vmax, p.hi ?? p.v, p.v);
  const yTicks = niceTicks(0, Math.max(vmax * 1.1, 1), 4);
  const ymax = yTicks[yTicks.length - 1];
  const x = (t) => m.l + ((t - t0) / Math.max(t1 - t0, 1e-9)) * w;
  const y = (v) => m.t + h - (v / ymax) * h;

  const svg = svgEl("svg", {
    viewBox: `0 0 ${width} ${height}`, role: "img",
    "aria-label": `${opts.yLabel ?? "values"} over time: ` +
      series.map((s) => `${s.name} latest ${s.points.at(-1)?.v?.toFixed(1) ?? "none"}`).join(", "),
  });
  for (const v of yTicks) {
    svg.append(svgEl("line", { class: "grid", x1: m.l, x2: m.l + w, y1: y(v), y2: y(v) }));
    svg.append(svgEl("text", { x: m.l - 6, y: y(v) + 4, "text-anchor": "end" }, String(v)));
  }
  const tStep = (t1 - t0) / 5;
  for (let i = 0; i <= 5; i++) {
    const t = t0 + i * tStep;
    const anchor = i === 0 ? "start" : i === 5 ? "end" : "middle";
    svg.append(svgEl("text", { x: x(t), y: height - 8, "text-anchor": anchor },
      fmtClock(t, t1 - t0)));
  }
  svg.append(svgEl("line", { class: "axis", x1: m.l, x2: m.l + w, y1: m.t + h, y2: m.t + h }));

  for (const s of series) {
    const pts = s.points.filter((p) => p.t >= t0 && p.t <= t1);
    if (!pts.length) continue;
    if (pts.some((p) => p.lo !== undefined && p.hi !== undefined)) {
      const upper = pts.map((p) => `${x(p.t).toFixed(1)},${y(p.hi ?? p.v).toFixed(1)}`);
      const lower = pts.slice().reverse()
        .map((p) => `${x(p.t).toFixed(1)},${y(p.lo ?? p.v).toFixed(1)}`);
      svg.append(svgEl("polygon", {
        points: [...upper, ...lower].join(" "), fill: s.color, opacity: 0.15,
      }));
    }
    const d = pts.map((p, i) => `${i ? "L" : "M"}${x(p.t).toFixed(1)},${y(p.v).toFixed(1)}`);
    const path = svgEl("path", {
      d: d.join(""), fill: "none", stroke: s.color, "stroke-width": 2,
      "stroke-linejoin": "round", "data-series": s.name,
    });
    path.append(svgEl("title", {}, s.name));
    svg.append(path);
    const last = pts[pts.length - 1];
    svg.append(svgEl("circle", { cx: x(last.t), cy: y(last.v), r: 3, fill: s.color }));
  }
  return svg;
}

/**
 * Sankey diagram of flows between zones: sources on the left, destinations on the right,
 * band widths proportional to the number of tracks.
 *
 * @param {Array<{from_zone: string, to_zone: string, count: number}>} flows
 * @returns {SVGSVGElement}
 */
export function sankey(flows, { width = 720, rowGap = 10 } = {}) {
  const total = flows.reduce((a, f) => a + f.count, 0);
  const sum = (key) => {
    const out = new Map();
    for (const f of flows) out.set(f[key], (out.get(f[key]) ?? 0) + f.count);
    return [...out.entries()].sort((a, b) => b[1] - a[1]);
  };
  const left = sum("from_zone");
  const right = sum("to_zone");
  const rows = Math.max(left.length, right.length);
  const innerH = Math.max(120, rows * 34);
  const height = innerH + rowGap * (rows + 1);
  const nodeW = 12;
  const labelW = 120;
  const x0 = labelW;
  const x1 = width - labelW - nodeW;
  const scale = (innerH - rowGap * Math.max(rows - 1, 0)) / Math.max(total, 1);

  const place = (list) => {
    const pos = new Map();
    let yy = rowGap;
    for (const [name, n] of list) {
      pos.set(name, { y: yy, h: Math.max(n * scale, 2), offset: 0 });
      yy += Math.max(n * scale, 2) + rowGap;
    }
    return pos;
  };
  const L = place(left);
  const R = place(right);
  const svg = svgEl("svg", {
    viewBox: `0 0 ${width} ${height}`, role: "img",
    "aria-label": `Zone-to-zone flows: ${flows.length} routes, ${total} tracks`,
  });
  const sorted = flows.slice().sort((a, b) => b.count - a.count);
  for (const f of sorted) {
    const a = L.get(f.from_zone);
    const b = R.get(f.to_zone);
    const bw = Math.max(f.count * scale, 1);
    const ya = a.y + a.offset + bw / 2;
    const yb = b.y + b.offset + bw / 2;
    a.offset += bw;
    b.offset += bw;
    const xa = x0 + nodeW;
    const xm = (xa + x1) / 2;
    const band = svgEl("path", {
      class: "band", d: `M${xa},${ya} C${xm},${ya} ${xm},${yb} ${x1},${yb}`,
      fill: "none", stroke: "var(--accent)", "stroke-width": bw, "stroke-opacity": 0.35,
      "data-flow": `${f.from_zone}>${f.to_zone}`,
    });
    band.append(svgEl("title", {}, `${f.from_zone} → ${f.to_zone}: ${f.count}`));
    svg.append(band);
  }
  const drawNodes = (pos, x, anchor, lx) => {
    for (const [name, p] of pos) {
      svg.append(svgEl("rect", { class: "node", x, y: p.y, width: nodeW, height: p.h, rx: 2 }));
      const n = (anchor === "end" ? left : right).find(([k]) => k === name)[1];
      svg.append(svgEl("text", {
        class: "node-label", x: lx, y: p.y + p.h / 2 + 4, "text-anchor": anchor,
      }, `${name} (${n})`));
    }
  };
  drawNodes(L, x0, "end", x0 - 6);
  drawNodes(R, x1, "start", x1 + nodeW + 6);
  return svg;
}
