// crowdsight dashboard: sign-in, live camera grid, event timeline, counts chart and flows.
// Plain ES modules, no build step. Data comes from the REST API by polling (events every
// 2 s, so a new event shows within a few seconds); live video is an MJPEG <img> per camera.

import { api, ApiError, asList, login, logout, qs, whoami } from "./api.js";
import { lineChart, sankey, svgEl } from "./charts.js";
import { AnomalyPanel } from "./anomaly.js";

const POLL_EVENTS_MS = 2000;
const POLL_STATUS_MS = 2000;
const POLL_CHART_MS = 5000;
const POLL_CAMERAS_MS = 10000;
// Browsers allow ~6 HTTP/1.1 connections per host; each MJPEG stream holds one, so only the
// first few tiles stream and the rest refresh a snapshot once a second.
const MAX_MJPEG = 4;
const SNAPSHOT_REFRESH_MS = 1000;
// A camera without a frame yet (starting, reconnecting) is retried with back-off.
const RETRY_MIN_MS = 1000;
const RETRY_MAX_MS = 15000;
const EVENT_LIMIT = 60;
const ROLE_RANK = { viewer: 0, operator: 1, admin: 2 };
const SERIES = [
  { name: "count_density", label: "People (density)", color: "#4cc2ff" },
  { name: "count_tracked", label: "Tracked people", color: "#ffb347" },
];
// Instantaneous events: their end time may be missing, but they are never "ongoing".
const POINT_TYPES = new Set(["line_crossed", "zone_entered", "zone_exited", "fall"]);
const KNOWN_TYPES = [
  "line_crossed", "zone_entered", "zone_exited", "overcrowding", "crowd_surge", "running",
  "dispersal", "loitering", "wrong_way", "fall", "intrusion", "anomaly",
];

const $ = (sel, root = document) => root.querySelector(sel);

/** Create an element with attributes and children (text is always set as text, never HTML). */
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") el.className = v;
    else if (k === "testid") el.dataset.testid = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

/** A legend colour swatch (CSSOM, not a style attribute: the CSP forbids inline styles). */
function swatch(color) {
  const el = h("span", { class: "sw", "aria-hidden": "true" });
  el.style.background = color;
  return el;
}

/**
 * Bounds, default and help of the camera form's number inputs, read from the API's own
 * schema (the `Camera` model in /openapi.json), so the form never disagrees with the server:
 * each setting is declared once, in crowdsight.config.camera.
 */
async function applyCameraSchema(form) {
  const spec = await api("/openapi.json");
  const props = spec?.components?.schemas?.Camera?.properties ?? {};
  for (const input of form.querySelectorAll("input[type=number][name]")) {
    const field = props[input.name];
    if (!field) continue;
    for (const [attr, key] of [["min", "minimum"], ["max", "maximum"]]) {
      if (typeof field[key] === "number") input.setAttribute(attr, String(field[key]));
    }
    if (field.default !== undefined) input.defaultValue = String(field.default);
    if (field.description) input.title = field.description;
  }
  form.dataset.schema = "loaded";
}

/** Safety events still going on come first (critical before warning), then the rest by time. */
const SEVERITY_RANK = { critical: 0, warning: 1 };
const openSafetyFirst = (events) => {
  const rank = (ev) => (isOngoing(ev) && ev.severity in SEVERITY_RANK ? SEVERITY_RANK[ev.severity] : 2);
  return events.map((ev, i) => [rank(ev), i, ev]).sort((a, b) => a[0] - b[0] || a[1] - b[1])
    .map(([, , ev]) => ev);
};
const isOngoing = (ev) => (ev.end_ts_s === null || ev.end_ts_s === undefined)
  && !POINT_TYPES.has(ev.type);
const humanize = (s) => (s ?? "").replaceAll("_", " ").replace(/^./, (c) => c.toUpperCase());
const fmtTime = (ts_s) => new Date(ts_s * 1000).toLocaleTimeString([], { hour12: false });
const fmtDateTime = (ts_s) => new Date(ts_s * 1000).toLocaleString([], { hour12: false });
const fmtNum = (v, digits = 0) => (Number.isFinite(v) ? v.toFixed(digits) : "–");
const LOS = ["A", "B", "C", "D", "E", "F"];
const losLetter = (v) => LOS[Math.round(v)] ?? null;

/** Periodic task that pauses while the tab is hidden and never overlaps itself. */
class Poller {
  constructor(fn, everyMs) {
    this.fn = fn;
    this.everyMs = everyMs;
    this.timer = null;
    this.running = false;
  }
  start() {
    this.stop();
    this.running = true;
    const tick = async () => {
      if (!this.running) return;
      if (!document.hidden) {
        try { await this.fn(); } catch (err) { app.onError(err); }
      }
      if (this.running) this.timer = setTimeout(tick, this.everyMs);
    };
    tick();
  }
  stop() {
    this.running = false;
    clearTimeout(this.timer);
  }
  async now() {
    try { await this.fn(); } catch (err) { app.onError(err); }
  }
}

// ----------------------------------------------------------------------------- scene overlay
/**
 * The scene drawn over the live JPEG: zone outlines with their names, and counting lines with
 * an arrow to their "in" side and one to their "out" side, labelled with today's counts.
 * Coordinates stay in the scene's own pixels (``resolution_wh``, else the JPEG's size): the
 * SVG's viewBox maps them onto the image, whatever size the tile and the JPEG have.
 */
function sceneOverlay(scene, sizeWH) {
  const [w, hh] = scene.resolution_wh ?? sizeWH;
  const svg = svgEl("svg", {
    class: "scene-overlay", "data-testid": "scene-overlay", viewBox: `0 0 ${w} ${hh}`,
    preserveAspectRatio: "none", "aria-hidden": "true",
  });
  const u = Math.max(w, hh) / 100; // 1 % of the frame: stroke and text sizes
  for (const z of scene.zones ?? []) {
    const pts = z.polygon ?? [];
    if (pts.length < 3) continue;
    svg.append(svgEl("polygon", {
      class: `zone-shape${z.kind === "restricted" ? " restricted" : ""}`, "data-zone-id": z.id,
      points: pts.map((p) => p.join(",")).join(" "), "stroke-width": u * 0.4,
    }));
    const [x0, y0] = pts.reduce((a, p) => [Math.min(a[0], p[0]), Math.min(a[1], p[1])], [w, hh]);
    svg.append(svgEl("text", { class: "zone-label", x: x0 + u, y: y0 + 3.5 * u, "font-size": 3 * u },
      z.name || z.id));
  }
  for (const ln of scene.lines ?? []) {
    const pts = ln.points ?? [];
    if (pts.length < 2) continue;
    const g = svgEl("g", { class: "line-shape", "data-line-id": ln.id });
    g.append(svgEl("polyline", { points: pts.map((p) => p.join(",")).join(" "), "stroke-width": u * 0.6 }));
    const [ax, ay] = pts[0];
    const [bx, by] = pts[pts.length - 1];
    const [mx, my] = [(ax + bx) / 2, (ay + by) / 2];
    const [dx, dy] = ln.in_direction ?? [by - ay, ax - bx];
    const n = Math.hypot(dx, dy) || 1;
    const len = 8 * u;
    for (const [sign, side] of [[1, "in"], [-1, "out"]]) {
      const [ex, ey] = [mx + (sign * dx / n) * len, my + (sign * dy / n) * len];
      g.append(svgEl("line", {
        class: `arrow ${side}`, x1: mx, y1: my, x2: ex, y2: ey, "stroke-width": u * 0.5,
        "marker-end": "url(#cs-arrow)",
      }));
      g.append(svgEl("text", {
        class: `line-count ${side}`, "data-side": side, x: ex + (sign * dx / n) * u,
        y: ey + (sign * dy / n) * u + u, "font-size": 3 * u,
        "text-anchor": sign * dx >= 0 ? "start" : "end",
      }, `${side} –`));
    }
    svg.append(g);
  }
  const defs = svgEl("defs");
  const marker = svgEl("marker", {
    id: "cs-arrow", viewBox: "0 0 10 10", refX: 8, refY: 5, markerWidth: 5, markerHeight: 5,
    orient: "auto-start-reverse",
  });
  marker.append(svgEl("path", { d: "M 0 0 L 10 5 L 0 10 z", class: "arrow-head" }));
  defs.append(marker);
  svg.prepend(defs);
  return svg;
}

// ----------------------------------------------------------------------------- camera tiles
class CameraTile {
  constructor(camera, index) {
    this.camera = camera;
    this.mode = index < MAX_MJPEG ? "mjpeg" : "snapshot";
    this.retry = null;
    this.retryMs = RETRY_MIN_MS;
    this.img = h("img", {
      alt: `Live view of ${camera.name || camera.id} (faces blurred, density heatmap)`,
      testid: "camera-image", decoding: "async",
      onload: () => this.onFrame(), onerror: () => this.onImageError(),
    });
    this.placeholder = h("div", { class: "placeholder", testid: "camera-placeholder" },
      camera.enabled === false ? "Camera disabled" : "Waiting for the first frame…");
    this.liveDot = h("span", { class: "live-dot", hidden: true }, "LIVE");
    this.stateBadge = h("span", { class: "badge", testid: "camera-state" }, "…");
    this.stats = {
      people: h("div", { class: "v", testid: "count-density" }, "–"),
      tracked: h("div", { class: "v", testid: "count-tracked" }, "–"),
      fps: h("div", { class: "v", testid: "camera-fps" }, "–"),
    };
    this.zones = h("ul", { class: "zones", testid: "zone-list", "aria-label": "Zones" });
    this.errorLine = h("p", { class: "camera-error", testid: "camera-error", role: "status", hidden: true });
    // Standing problems the camera runs with (a scene drawn at another size, rescaled).
    this.warningLine = h("p", { class: "camera-warning", testid: "camera-warning", role: "status", hidden: true });
    // Where the density model's input scale comes from: "density scale 0.50, from 240 person boxes".
    this.scaleLine = h("p", { class: "muted density-scale", testid: "density-scale", hidden: true });
    this.calibrateButton = h("button", {
      type: "button", class: "link calibrate-open", testid: "calibrate-open",
      title: "Click four corners of a floor rectangle and type its size: zones then show "
        + "persons/m² and the level of service.",
      hidden: (ROLE_RANK[app.user?.role] ?? 1) < ROLE_RANK.operator,
      onclick: () => this.calibrate(),
    }, "Calibrate floor");
    this.el = h("article", {
      class: "camera-tile", testid: "camera-tile", "data-camera-id": camera.id,
      "aria-label": `Camera ${camera.name || camera.id}`,
    },
      h("header", {},
        h("span", { class: "camera-name", title: camera.source }, camera.name || camera.id),
        this.calibrateButton, this.stateBadge),
      h("div", { class: "camera-view" }, this.img, this.placeholder, this.liveDot),
      this.errorLine,
      this.warningLine,
      h("div", { class: "camera-stats" },
        h("div", { class: "stat" }, this.stats.people, h("div", { class: "k" }, "people (density)")),
        h("div", { class: "stat" }, this.stats.tracked, h("div", { class: "k" }, "tracked")),
        h("div", { class: "stat" }, this.stats.fps, h("div", { class: "k" }, "fps"))),
      this.scaleLine,
      this.zones);
    this.addAnomalyPanel();
    this.play();
  }

  /** The anomaly score chart and "Learn normal now" (anomaly.js), below the zones. */
  addAnomalyPanel() {
    const canLearn = (ROLE_RANK[app.user?.role] ?? 1) >= ROLE_RANK.operator;
    this.anomaly = new AnomalyPanel(h, this.base, canLearn);
    this.el.append(this.anomaly.el);
  }

  get base() { return `/api/cameras/${encodeURIComponent(this.camera.id)}`; }

  play() {
    clearTimeout(this.retry);
    if (this.camera.enabled === false) return; // no worker runs it: nothing to show
    const bust = `t=${Date.now()}`;
    this.img.src = this.mode === "mjpeg"
      ? `${this.base}/live.mjpeg?${bust}` : `${this.base}/snapshot.jpg?${bust}`;
  }

  pause() {
    clearTimeout(this.retry);
    this.img.removeAttribute("src");
  }

  onFrame() {
    const { naturalWidth: w, naturalHeight: hh } = this.img;
    if (w > 0 && hh > 0) this.img.parentElement.style.aspectRatio = `${w} / ${hh}`;
    const scene = this.camera.scene ?? {};
    if (!this.overlay && w > 0 && ((scene.zones ?? []).length || (scene.lines ?? []).length)) {
      this.overlay = sceneOverlay(scene, [w, hh]);
      this.img.after(this.overlay);
      this.drawLineCounts();
    }
    this.placeholder.hidden = true;
    this.liveDot.hidden = false;
    this.retryMs = RETRY_MIN_MS;
    if (this.mode === "snapshot") this.retry = setTimeout(() => this.play(), SNAPSHOT_REFRESH_MS);
  }

  onImageError() {
    // 503 (no frame yet, camera starting) or a dropped stream: retry shortly.
    if (!this.img.getAttribute("src")) return;
    this.liveDot.hidden = true;
    if (this.img.naturalWidth === 0) this.placeholder.hidden = false;
    this.retry = setTimeout(() => this.play(), this.retryMs);
    this.retryMs = Math.min(this.retryMs * 2, RETRY_MAX_MS);
  }

  update(status) {
    // GET /api/cameras/{id}/status: {state, running, metrics: SceneMetrics, detail: {fps, error,
    // ...}}; metrics' names are the API schema's: counts, zones[id].occupancy / density_per_m2 /
    // los_index, lines[id].count_in / count_out.
    const detail = status?.detail ?? status ?? {};
    const state = status?.state ?? detail.state ?? "unknown";
    this.stateBadge.textContent = state;
    this.stateBadge.className = `badge state-${state}`;
    this.stateBadge.title = detail.error ?? "";
    // The reason is on the card, not only in a tooltip: "…/gone.mp4: no such file or folder;
    // retrying with back-off (attempt 3)".
    const broken = (state === "error" || state === "failed") && detail.error;
    this.errorLine.hidden = !broken;
    this.errorLine.textContent = broken ? detail.error : "";
    if (broken && this.img.naturalWidth === 0) this.placeholder.textContent = "No picture: see the reason below.";
    const warnings = detail.warnings ?? [];
    this.warningLine.hidden = warnings.length === 0;
    this.warningLine.textContent = warnings.join(" · ");
    const metrics = status?.metrics ?? {};
    const counts = metrics.counts ?? {};
    const scale = counts.density_scale, boxes = counts.density_scale_boxes;
    const calFrames = counts.count_calibration_frames, calMae = counts.count_calibration_mae;
    const calibrated = !(calFrames > 0) ? ""
      : ` · counts calibrated on ${fmtNum(calFrames, 0)} labelled frames`
        + (Number.isFinite(calMae) ? ` (held-out error ${fmtNum(calMae, 1)})` : "");
    this.scaleLine.hidden = !Number.isFinite(scale);
    this.scaleLine.textContent = !Number.isFinite(scale) ? ""
      : (boxes > 0 ? `density scale ${fmtNum(scale, 2)}, from ${fmtNum(boxes, 0)} person boxes`
        : `density scale ${fmtNum(scale, 2)}`) + calibrated;
    this.scaleLine.title = "The density model sees the frame resized so people are the size it "
      + "counts best; the scale is learned from the detector's person boxes (or set in the config)."
      + (calibrated ? " The camera's count calibration (crowdsight calibrate counting) corrects "
        + "its counts; the error is the one measured on labelled frames it was not fitted on." : "");
    this.stats.people.textContent = fmtNum(counts.count_density, 0);
    // "tracked" is the picture's own figure (the boxes drawn on the live image, as in its
    // header); the latest frame's metrics are usually of a later frame than the one shown.
    this.stats.tracked.textContent = fmtNum(detail.live_frame?.tracked ?? counts.count_tracked, 0);
    this.stats.fps.textContent = fmtNum(detail.fps, 1);
    this.lineCounts = new Map(Object.entries(metrics.lines ?? {}));
    this.renderZones(new Map(Object.entries(metrics.zones ?? {})), this.lineCounts);
    this.drawLineCounts();
  }

  /** Today's in/out counts next to each line's arrows on the overlay. */
  drawLineCounts() {
    if (!this.overlay || !this.lineCounts) return;
    for (const [id, l] of this.lineCounts) {
      for (const side of ["in", "out"]) {
        const text = this.overlay.querySelector(
          `[data-line-id="${CSS.escape(id)}"] text[data-side=${side}]`);
        if (text) text.textContent = `${side} ${fmtNum(l[`count_${side}`], 0)}`;
      }
    }
  }

  /**
   * Floor calibration helper: the operator clicks four corners of a rectangle on the floor
   * (tiles, a marked bay) in order around it and types its width (1→2) and depth (2→3) in
   * metres; the scene gets ``calibration`` {image_px, ground_m} in its own pixels, saved with
   * PUT like any camera change (the server validates it: a degenerate quad is refused with
   * its reason). Points are in the overlay's coordinates: the scene's ``resolution_wh``, else
   * the live image's size (then written to the scene when it has no zones or lines yet).
   */
  calibrate() {
    if (this.calibration) return;
    const { naturalWidth: iw, naturalHeight: ih } = this.img;
    if (!iw) { this.errorLine.hidden = false; this.errorLine.textContent = "Wait for the first frame to calibrate."; return; }
    const scene = this.camera.scene ?? {};
    const [w, hh] = scene.resolution_wh ?? [iw, ih];
    const points = [];
    const svg = svgEl("svg", {
      class: "calib-overlay", "data-testid": "calib-overlay", viewBox: `0 0 ${w} ${hh}`,
      preserveAspectRatio: "none",
    });
    const u = Math.max(w, hh) / 100;
    const shape = svgEl("polygon", { class: "calib-shape", "stroke-width": u / 2 });
    svg.append(shape);
    const status = h("span", { testid: "calib-status" }, "Click corner 1 of a floor rectangle.");
    const width = h("input", { type: "number", min: "0.1", step: "0.1", required: true, testid: "calib-width", "aria-label": "Width 1→2 in metres" });
    const depth = h("input", { type: "number", min: "0.1", step: "0.1", required: true, testid: "calib-depth", "aria-label": "Depth 2→3 in metres" });
    const error = h("span", { class: "camera-error", testid: "calib-error", role: "alert" });
    const save = h("button", { type: "submit", testid: "calib-save", disabled: true }, "Save");
    const redraw = () => {
      shape.setAttribute("points", points.map((p) => p.join(",")).join(" "));
      svg.querySelectorAll("g.calib-point").forEach((g) => g.remove());
      points.forEach(([x, y], i) => {
        const g = svgEl("g", { class: "calib-point" });
        g.append(svgEl("circle", { cx: x, cy: y, r: u }));
        g.append(svgEl("text", { x: x + 1.5 * u, y: y - 1.5 * u, "font-size": 3 * u }, String(i + 1)));
        svg.append(g);
      });
      save.disabled = points.length !== 4;
      status.textContent = points.length < 4 ? `Click corner ${points.length + 1} of a floor rectangle.`
        : "Type the rectangle's size and save.";
    };
    svg.addEventListener("click", (e) => {
      if (points.length >= 4) return;
      const pt = svg.createSVGPoint();
      pt.x = e.clientX; pt.y = e.clientY;
      const p = pt.matrixTransform(svg.getScreenCTM().inverse());
      points.push([Math.round(p.x * 10) / 10, Math.round(p.y * 10) / 10]);
      redraw();
    });
    const close = () => { svg.remove(); panel.remove(); this.calibration = null; };
    const panel = h("form", { class: "calib-panel", testid: "calib-panel",
      onsubmit: async (e) => {
        e.preventDefault();
        error.textContent = "";
        const W = Number(width.value), D = Number(depth.value);
        try {
          const cam = await api(this.base);
          const next = { ...(cam.scene ?? {}) };
          next.calibration = { image_px: points, ground_m: [[0, 0], [W, 0], [W, D], [0, D]] };
          if (!next.resolution_wh && !(next.zones ?? []).length && !(next.lines ?? []).length) {
            next.resolution_wh = [w, hh];
          }
          this.camera = await api(this.base, { method: "PUT", body: { ...cam, scene: next } });
          close();
        } catch (ex) {
          error.textContent = `Not saved: ${ex.message}`;
        }
      } },
      status, " ",
      h("label", {}, "width 1→2 ", width, " m"), " ",
      h("label", {}, "depth 2→3 ", depth, " m"), " ",
      save,
      h("button", { type: "button", testid: "calib-undo", onclick: () => { points.pop(); redraw(); } }, "Undo"),
      h("button", { type: "button", testid: "calib-cancel", onclick: close }, "Cancel"),
      error);
    this.img.parentElement.append(svg);
    this.errorLine.after(panel);
    this.calibration = { svg, panel };
  }

  renderZones(zones, lines) {
    const byId = (m) => [...m.entries()].sort(([a], [b]) => a.localeCompare(b));
    const zoneItems = byId(zones).map(([id, z]) => {
      const los = z.los_index !== undefined && z.los_index !== null ? losLetter(z.los_index) : null;
      // Calibrated: persons/m² and level of service. Otherwise plain people in the zone and a
      // prompt to calibrate (people per image area means nothing to an operator).
      const calibrated = z.density_per_m2 !== undefined && z.density_per_m2 !== null;
      const density = calibrated ? ` · ${fmtNum(z.density_per_m2, 2)} persons/m²` : "";
      return h("li", { testid: "zone", "data-zone-id": id },
        h("span", {}, id),
        h("span", {},
          h("span", { class: "zone-count", testid: "zone-occupancy" },
            `${fmtNum(z.occupancy, 0)} people in zone${density}`),
          " ",
          calibrated ? null : h("span", {
            class: "muted calibrate-hint", testid: "calibrate-hint",
            title: "Add a floor calibration to the scene (four floor points and their distances "
              + "in metres) to see persons/m² and the level of service.",
          }, "calibrate for persons/m²"),
          los ? h("span", {
            class: `badge los los-${los}`, testid: "los-badge",
            title: `Level of service ${los} (A free flow … F jammed)`,
          }, los) : null));
    });
    const lineItems = byId(lines).map(([id, l]) => h("li", { testid: "line", "data-line-id": id },
      h("span", {}, `⟷ ${id}`),
      h("span", { class: "zone-count" }, `${fmtNum(l.count_in, 0)} in · ${fmtNum(l.count_out, 0)} out`)));
    this.zones.replaceChildren(...zoneItems, ...lineItems);
    this.zones.hidden = zoneItems.length + lineItems.length === 0;
  }
}

// ----------------------------------------------------------------------------- the app
const app = {
  user: null,
  cameras: [],
  tiles: new Map(),
  events: new Map(),
  eventsLoaded: false,
  pollers: [],

  async boot() {
    this.bindStatic();
    const me = await whoami().catch(() => null);
    if (me) this.enter(me);
    else this.showLogin();
  },

  bindStatic() {
    const root = document.documentElement;
    const saved = localStorage.getItem("crowdsight.theme");
    if (saved) root.dataset.theme = saved;
    $("[data-testid=theme-toggle]").addEventListener("click", () => {
      root.dataset.theme = root.dataset.theme === "light" ? "dark" : "light";
      localStorage.setItem("crowdsight.theme", root.dataset.theme);
    });
    $("[data-testid=login-form]").addEventListener("submit", (e) => this.onLogin(e));
    $("[data-testid=logout]").addEventListener("click", () => this.onLogout());
    const search = $("[data-testid=event-search-form]");
    search.addEventListener("submit", (e) => { e.preventDefault(); this.refilterEvents(); });
    let debounce = null;
    $("[data-testid=event-search]").addEventListener("input", () => {
      clearTimeout(debounce);
      debounce = setTimeout(() => this.refilterEvents(), 350);
    });
    for (const sel of ["event-camera-filter", "event-type-filter"]) {
      $(`[data-testid=${sel}]`).addEventListener("change", () => this.refilterEvents());
    }
    for (const sel of ["chart-camera", "chart-window"]) {
      $(`[data-testid=${sel}]`).addEventListener("change", () => this.chartPoller?.now());
    }
    $("[data-testid=flow-camera]").addEventListener("change", () => this.chartPoller?.now());
    const typeSelect = $("[data-testid=event-type-filter]");
    for (const t of KNOWN_TYPES) typeSelect.append(h("option", { value: t }, humanize(t)));
    this.bindAddCamera();
    this.bindEventDialog();
    document.addEventListener("visibilitychange", () => {
      for (const tile of this.tiles.values()) document.hidden ? tile.pause() : tile.play();
    });
  },

  showLogin(message = "") {
    for (const p of this.pollers) p.stop();
    for (const tile of this.tiles.values()) tile.pause();
    $("[data-testid=dashboard]").hidden = true;
    $("[data-testid=session]").hidden = true;
    $("[data-testid=service-problem]").hidden = true;
    $("[data-testid=login-view]").hidden = false;
    $("[data-testid=login-error]").textContent = message;
    $("[data-testid=login-username]").focus();
  },

  async onLogin(e) {
    e.preventDefault();
    const form = e.currentTarget;
    const err = $("[data-testid=login-error]");
    err.textContent = "";
    const username = form.elements.namedItem("username").value.trim();
    const password = form.elements.namedItem("password");
    try {
      const res = await login(username, password.value);
      password.value = "";
      const user = res?.user ?? res ?? {};
      this.enter({ username: user.username ?? username, role: user.role ?? "" });
    } catch (ex) {
      err.textContent = ex instanceof ApiError && ex.status === 401
        ? "Wrong username or password." : `Sign-in failed: ${ex.message}`;
    }
  },

  async onLogout() {
    await logout();
    this.user = null;
    this.showLogin();
  },

  enter(user) {
    this.user = user;
    $("[data-testid=login-view]").hidden = true;
    $("[data-testid=dashboard]").hidden = false;
    $("[data-testid=session]").hidden = false;
    $("[data-testid=current-user]").textContent =
      [user.username, user.role && `(${user.role})`].filter(Boolean).join(" ");
    // Unknown role: show the form and let the server decide (it answers 403 to viewers).
    const rank = ROLE_RANK[user.role] ?? 1;
    $("[data-testid=add-camera-open]").hidden = rank < ROLE_RANK.operator;
    this.cameraPoller = new Poller(() => this.loadCameras(), POLL_CAMERAS_MS);
    this.statusPoller = new Poller(() => this.loadStatus(), POLL_STATUS_MS);
    this.eventPoller = new Poller(() => this.loadEvents(), POLL_EVENTS_MS);
    this.chartPoller = new Poller(() => Promise.all([this.loadChart(), this.loadFlows()]),
      POLL_CHART_MS);
    this.pollers = [this.cameraPoller, this.statusPoller, this.eventPoller, this.chartPoller];
    for (const p of this.pollers) p.start();
  },

  onError(err) {
    const conn = $("[data-testid=connection]");
    if (err instanceof ApiError && err.status === 401) {
      this.showLogin("Your session has ended; please sign in again.");
      return;
    }
    conn.textContent = "connection problem";
    conn.className = "conn bad";
    console.warn(err);
  },

  markOnline() {
    const conn = $("[data-testid=connection]");
    conn.textContent = "live";
    conn.className = "conn ok";
  },

  // -------------------------------------------------------------------- cameras
  async loadCameras() {
    const cameras = asList(await api("/api/cameras"), "cameras");
    this.markOnline();
    // A tile is rebuilt when what it shows changes (name, source, enabled), else kept as is
    // so its live stream is not interrupted.
    const sig = (c) => JSON.stringify([c.id, c.name, c.source, c.enabled]);
    if (cameras.map(sig).join("|") === this.cameras.map(sig).join("|")) return;
    this.cameras = cameras;
    const grid = $("[data-testid=camera-grid]");
    const next = new Map();
    cameras.forEach((cam, i) => {
      const old = this.tiles.get(cam.id);
      next.set(cam.id, old && sig(old.camera) === sig(cam) ? old : new CameraTile(cam, i));
    });
    for (const [id, tile] of this.tiles) if (next.get(id) !== tile) tile.pause();
    this.tiles = next;
    grid.replaceChildren(...[...next.values()].map((t) => t.el));
    $("[data-testid=no-cameras]").hidden = cameras.length > 0;
    this.fillCameraSelects();
    this.statusPoller.now();
  },

  fillCameraSelects() {
    const opts = () => this.cameras.map((c) => h("option", { value: c.id }, c.name || c.id));
    const evSel = $("[data-testid=event-camera-filter]");
    const keep = evSel.value;
    evSel.replaceChildren(h("option", { value: "" }, "All cameras"), ...opts());
    evSel.value = keep;
    for (const id of ["chart-camera", "flow-camera"]) {
      const sel = $(`[data-testid=${id}]`);
      const prev = sel.value;
      sel.replaceChildren(...opts());
      if (prev && this.cameras.some((c) => c.id === prev)) sel.value = prev;
    }
    this.chartPoller?.now();
  },

  async loadStatus() {
    await Promise.all([this.loadHealth(), ...[...this.tiles.values()].map(async (tile) => {
      try {
        tile.update(await api(`${tile.base}/status`));
        await tile.anomaly?.refresh().catch((err) => { if (err?.status === 401) throw err; });
      } catch (err) {
        if (err instanceof ApiError && err.status === 401) throw err;
        tile.update({ state: err instanceof ApiError && err.status === 503 ? "no runner" : "unknown" });
      }
    })]);
  },

  /** The service's own problem (a full disk, a database down), as /api/health words it. */
  async loadHealth() {
    const banner = $("[data-testid=service-problem]");
    let health;
    try {
      health = await api("/api/health");
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) throw err;
      return; // the connection indicator already says the server is unreachable
    }
    const problem = health?.status !== "ok" ? (health?.problem || "the service is degraded") : "";
    banner.textContent = problem ? `Service problem: ${problem}` : "";
    banner.hidden = !problem;
  },

  // -------------------------------------------------------------------- events
  eventQuery() {
    return {
      q: $("[data-testid=event-search]").value.trim(),
      camera_id: $("[data-testid=event-camera-filter]").value,
      type: $("[data-testid=event-type-filter]").value,
      limit: EVENT_LIMIT,
    };
  },

  refilterEvents() {
    // The list is replaced when the new answer arrives (no blank gap, no "new" highlight).
    this.eventsLoaded = false;
    this.eventPoller?.now();
  },

  async loadEvents() {
    const query = this.eventQuery();
    const [data, descs] = await Promise.all([
      api(`/api/events${qs(query)}`),
      api(`/api/descriptions${qs({ limit: 500 })}`).catch(() => []),
    ]);
    const list = openSafetyFirst(asList(data, "events"));
    this.descriptions = new Map(asList(descs).map((d) => [`${d.camera_id}#${d.track_id}`, d.text]));
    if (JSON.stringify(query) !== JSON.stringify(this.eventQuery())) return; // filters changed
    this.markOnline();
    if (!this.eventsLoaded) this.events.clear();
    const timeline = $("[data-testid=event-timeline]");
    const seen = new Set();
    const nodes = [];
    for (const ev of list) {
      seen.add(ev.event_id);
      const prev = this.events.get(ev.event_id);
      ev.description = this.describe(ev);
      if (prev && prev.ev.revision === ev.revision && prev.ev.description === ev.description) {
        nodes.push(prev.el);
        continue;
      }
      const el = this.renderEvent(ev);
      if (!prev && this.eventsLoaded) el.classList.add("fresh");
      this.events.set(ev.event_id, { ev, el });
      nodes.push(el);
    }
    for (const id of [...this.events.keys()]) if (!seen.has(id)) this.events.delete(id);
    const same = nodes.length === timeline.children.length
      && nodes.every((n, i) => timeline.children[i] === n);
    if (!same) timeline.replaceChildren(...nodes);
    this.eventsLoaded = true;
    $("[data-testid=no-events]").hidden = list.length > 0;
    $("[data-testid=events-updated]").textContent = `updated ${fmtTime(Date.now() / 1000)}`;
  },

  /** Plain words about the event's tracks ("red top, blue jeans"), from /api/descriptions. */
  describe(ev) {
    const p = ev.payload ?? {};
    const own = p.description ?? p.text;
    if (typeof own === "string" && own) return own;
    const texts = (ev.track_ids ?? [])
      .map((t) => this.descriptions?.get(`${ev.camera_id}#${t}`)).filter(Boolean);
    return [...new Set(texts)].join("; ");
  },

  renderEvent(ev) {
    const where = [ev.camera_id, ev.zone_id && `zone ${ev.zone_id}`, ev.line_id && `line ${ev.line_id}`]
      .filter(Boolean).join(" · ");
    const description = ev.description;
    const thumb = ev.has_snapshot
      ? h("img", {
        class: "event-thumb", loading: "lazy", testid: "event-snapshot",
        alt: `Snapshot of ${humanize(ev.type)} (redacted)`,
        src: `/api/events/${encodeURIComponent(ev.event_id)}/snapshot`,
      })
      : h("div", { class: "event-thumb none", "aria-hidden": "true" }, "no image");
    const li = h("li", {
      class: `event sev-${ev.severity}`, testid: "event", tabindex: "0",
      "data-event-id": ev.event_id, "data-event-type": ev.type,
      onclick: () => this.openEvent(ev),
      onkeydown: (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); this.openEvent(ev); } },
    },
      thumb,
      h("div", {},
        h("div", { class: "event-title" }, humanize(ev.type),
          isOngoing(ev) ? h("span", { class: "open-tag", testid: "event-ongoing" }, "ongoing") : null),
        h("div", { class: "event-meta" },
          h("time", { datetime: new Date(ev.start_ts_s * 1000).toISOString() }, fmtTime(ev.start_ts_s)),
          ` · ${ev.severity} · ${where}`),
        ev.payload?.reason
          ? h("div", { class: "event-reason", testid: "event-reason" }, ev.payload.reason) : null,
        description ? h("div", { class: "event-desc", testid: "event-description" }, description) : null));
    return li;
  },

  bindEventDialog() {
    const dlg = $("[data-testid=event-dialog]");
    $("[data-testid=event-dialog-close]").addEventListener("click", () => dlg.close());
    dlg.addEventListener("click", (e) => { if (e.target === dlg) dlg.close(); });
  },

  openEvent(ev) {
    const dlg = $("[data-testid=event-dialog]");
    $("#event-dialog-title").textContent = humanize(ev.type);
    const img = $("[data-testid=event-dialog-snapshot]");
    img.hidden = !ev.has_snapshot;
    if (ev.has_snapshot) {
      img.src = `/api/events/${encodeURIComponent(ev.event_id)}/snapshot`;
      img.alt = `Redacted snapshot of ${humanize(ev.type)}`;
    } else img.removeAttribute("src");
    const fields = {
      camera: ev.camera_id, severity: ev.severity,
      started: fmtDateTime(ev.start_ts_s),
      ended: isOngoing(ev) ? "ongoing" : ev.end_ts_s ? fmtDateTime(ev.end_ts_s) : null,
      zone: ev.zone_id, line: ev.line_id,
      tracks: ev.track_ids?.length ? ev.track_ids.join(", ") : null,
      description: ev.description,
    };
    const skip = new Set(["event_id", "camera_id", "start_ts_s", "end_ts_s", "severity", "zone_id",
      "line_id", "track_ids", "snapshot", "type"]);
    for (const [k, v] of Object.entries(ev.payload ?? {})) {
      if (skip.has(k) || v === null || typeof v === "object") continue;
      fields[humanize(k).toLowerCase()] = typeof v === "number" ? +v.toFixed(3) : v;
    }
    $("[data-testid=event-dialog-fields]").replaceChildren(...Object.entries(fields)
      .filter(([, v]) => v !== null && v !== undefined && v !== "")
      .flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, String(v))]));
    dlg.showModal();
  },

  // -------------------------------------------------------------------- charts and flows
  async loadChart() {
    const box = $("[data-testid=counts-chart]");
    const camera = $("[data-testid=chart-camera]").value;
    if (!camera) {
      box.replaceChildren(h("p", { class: "muted" }, "No camera to chart yet."));
      return;
    }
    const window_s = Number($("[data-testid=chart-window]").value);
    const t1 = Date.now() / 1000;
    const t0 = t1 - window_s;
    const bucket_s = Math.max(5, Math.round(window_s / 180));
    const series = await Promise.all(SERIES.map(async (s) => {
      const data = await api(`/api/metrics${qs({ camera_id: camera, name: s.name, since: t0.toFixed(0), bucket_s })}`);
      const points = asList(data, "points", "series").map((p) => ({
        t: p.ts_s, v: p.mean ?? p.value ?? p.last, lo: p.min, hi: p.max,
      })).filter((p) => Number.isFinite(p.t) && Number.isFinite(p.v));
      return { name: s.label, color: s.color, points };
    }));
    if (!series.some((s) => s.points.length)) {
      box.replaceChildren(h("p", { class: "muted", testid: "chart-empty" },
        "No counts recorded in this window yet."));
      return;
    }
    // A camera younger than the window: start the axis shortly before its first sample
    // rather than squeezing its whole history into the right edge.
    const first = Math.min(...series.flatMap((s) => s.points.map((p) => p.t)));
    const start = Math.max(t0, Math.min(first - 2 * bucket_s, t1 - 120));
    const width = Math.max(320, Math.round(box.clientWidth || 720));
    box.replaceChildren(lineChart(series, { t0: start, t1, width, yLabel: "people" }),
      h("div", { class: "legend" }, series.map((s) => h("span", {},
        swatch(s.color), s.name,
        s.points.length ? ` (now ${fmtNum(s.points.at(-1).v, 0)})` : ""))));
  },

  /** Why a camera has no flows yet, from its own scene (not a generic guess). */
  noFlowsText(cameraId) {
    const scene = this.cameras.find((c) => c.id === cameraId)?.scene ?? {};
    const zones = (scene.zones ?? []).length;
    if (zones < 2) {
      return `Flows need at least two zones; this camera's scene has ${zones === 0 ? "none" : "one"}.`;
    }
    return `No track has moved between this camera's ${zones} zones yet.`;
  },

  async loadFlows() {
    const box = $("[data-testid=flows-view]");
    const camera = $("[data-testid=flow-camera]").value;
    if (!camera) {
      box.replaceChildren(h("p", { class: "muted" }, "No camera yet."));
      return;
    }
    const flows = asList(await api(`/api/flows${qs({ camera_id: camera })}`), "flows")
      .filter((f) => f.count > 0);
    if (!flows.length) {
      box.replaceChildren(h("p", { class: "muted", testid: "flows-empty" }, this.noFlowsText(camera)));
      return;
    }
    const zonesFrom = [...new Set(flows.map((f) => f.from_zone))].sort();
    const zonesTo = [...new Set(flows.map((f) => f.to_zone))].sort();
    const count = (a, b) => flows.filter((f) => f.from_zone === a && f.to_zone === b)
      .reduce((s, f) => s + f.count, 0);
    const table = h("table", { class: "matrix", testid: "flow-matrix" },
      h("caption", { class: "sr-only" }, "Tracks moving from zone (rows) to zone (columns)"),
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "from \\ to"),
        zonesTo.map((z) => h("th", { scope: "col" }, z)))),
      h("tbody", {}, zonesFrom.map((a) => h("tr", {}, h("th", { scope: "row" }, a),
        zonesTo.map((b) => h("td", {}, count(a, b) || "·"))))));
    box.replaceChildren(sankey(flows, { width: Math.max(360, Math.round(box.clientWidth || 720)) }),
      table);
  },

  // -------------------------------------------------------------------- add camera
  bindAddCamera() {
    const dlg = $("[data-testid=add-camera-dialog]");
    const form = $("[data-testid=add-camera-form]");
    const err = $("[data-testid=add-camera-error]");
    applyCameraSchema(form).catch(() => {}); // without the schema the server still validates
    $("[data-testid=add-camera-open]").addEventListener("click", () => {
      err.textContent = "";
      dlg.showModal();
      $("#cam-id").focus();
    });
    $("[data-testid=add-camera-cancel]").addEventListener("click", () => dlg.close());
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      err.textContent = "";
      const f = (name) => form.elements.namedItem(name);
      const body = {
        id: f("id").value.trim(),
        name: f("name").value.trim(),
        source: f("source").value.trim(),
        loop: f("loop").checked,
        enabled: f("enabled").checked,
      };
      for (const name of ["detect_every", "density_every_s"]) {
        if (f(name).value !== "") body[name] = Number(f(name).value); // empty: server default
      }
      try {
        await api("/api/cameras", { method: "POST", body });
        dlg.close();
        form.reset();
        await this.cameraPoller.now();
      } catch (ex) {
        err.textContent = ex instanceof ApiError && ex.status === 403
          ? "Only operators and admins can add cameras." : ex.message;
      }
    });
  },
};

window.crowdsight = app; // handy for debugging in the console
app.boot();
