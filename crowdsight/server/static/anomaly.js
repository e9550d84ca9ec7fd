// A camera card's anomaly panel: the anomaly score over the last minutes (a small SVG chart
// drawn by charts.js, with the event threshold), the state of the camera's learned normal
// (learning 3:00 / 10:00, ready since …) and, for operators, "Learn normal now" for N minutes.
// Data: GET /api/cameras/{id}/anomaly, POST …/anomaly/learn, GET /api/metrics (anomaly_score).

import { api, asList, qs } from "./api.js";
import { lineChart } from "./charts.js";

const CHART_WINDOW_S = 600;
const CHART_EVERY_MS = 5000;
const SCORE_COLOR = "#c58cff";
const THRESHOLD_COLOR = "#ff6b6b";

/** 75 → "1:15", 3725 → "1:02:05". */
export function fmtDuration(s) {
  if (!Number.isFinite(s)) return "–";
  const t = Math.max(0, Math.round(s));
  const hh = Math.floor(t / 3600), mm = Math.floor((t % 3600) / 60), ss = t % 60;
  const two = (n) => String(n).padStart(2, "0");
  return hh ? `${hh}:${two(mm)}:${two(ss)}` : `${mm}:${two(ss)}`;
}

function fmtWhen(ts_s) {
  const d = new Date(ts_s * 1000);
  const today = new Date().toDateString() === d.toDateString();
  return d.toLocaleString([], today
    ? { hour: "2-digit", minute: "2-digit", hour12: false }
    : { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", hour12: false });
}

/** The state of a camera's learned normal in an operator's words. */
export function describeAnomalyState(st) {
  const model = st.model;
  if (st.state === "learning") {
    const l = st.learning;
    const head = l && !st.requested
      ? `learning ${fmtDuration(l.learned_s)} / ${fmtDuration(l.duration_s)}`
      : `learning requested (${fmtDuration(st.requested?.duration_s)}), waiting for the camera`;
    return model ? `${head}; the previous model keeps scoring` : head;
  }
  if (st.state === "ready" && model) {
    const span = model.footage_end_ts - model.footage_start_ts;
    return `normal learned from ${fmtDuration(span)} of footage at `
      + `${fmtWhen(model.footage_start_ts)} (${model.objects} objects); `
      + `ready since ${fmtWhen(model.ready_since_ts)}`;
  }
  return st.problem ? `no learned normal: ${st.problem}` : "no learned normal yet";
}

export class AnomalyPanel {
  /**
   * @param {Function} h  the dashboard's element helper (tag, attrs, ...children)
   * @param {string} base  the camera's API path, /api/cameras/{id}
   * @param {boolean} canLearn  operators and admins may start learning
   */
  constructor(h, base, canLearn) {
    this.h = h;
    this.base = base;
    this.nextChart = 0;
    this.stateLine = h("p", { class: "muted anomaly-state", testid: "anomaly-state", role: "status" }, "…");
    this.chart = h("div", { class: "anomaly-chart", testid: "anomaly-chart" });
    this.minutes = h("input", {
      type: "number", min: "0.05", max: "1440", step: "any", value: "10", required: true,
      testid: "anomaly-minutes", "aria-label": "Minutes of normal footage to learn from",
    });
    this.error = h("span", { class: "camera-error", testid: "anomaly-error", role: "alert" });
    this.form = h("form", {
      class: "anomaly-learn", testid: "anomaly-learn-form", hidden: !canLearn,
      onsubmit: (e) => this.learn(e),
    },
      h("button", {
        type: "submit", testid: "anomaly-learn",
        title: "Whatever the camera sees during this time counts as normal: choose an ordinary period.",
      }, "Learn normal now"),
      " for ", this.minutes, " min ", this.error);
    this.el = h("section", { class: "anomaly", testid: "anomaly-panel", "aria-label": "Anomaly score" },
      h("div", { class: "k" }, "anomaly score"), this.chart, this.stateLine, this.form);
  }

  async refresh() {
    const st = await api(`${this.base}/anomaly`);
    this.show(st);
    if (Date.now() >= this.nextChart) {
      this.nextChart = Date.now() + CHART_EVERY_MS;
      await this.drawChart(st);
    }
  }

  show(st) {
    this.stateLine.textContent = describeAnomalyState(st);
    this.stateLine.dataset.state = st.state;
    this.enterScore = st.enter_score;
  }

  async drawChart(st) {
    const cameraId = this.base.split("/").pop();
    const t1 = Date.now() / 1000;
    const t0 = t1 - CHART_WINDOW_S;
    const data = await api(`/api/metrics${qs({
      camera_id: decodeURIComponent(cameraId), name: "anomaly_score", since: t0.toFixed(0), bucket_s: 5,
    })}`);
    const points = asList(data, "points", "series").map((p) => ({
      t: p.ts_s, v: p.max ?? p.mean ?? p.value,
    })).filter((p) => Number.isFinite(p.t) && Number.isFinite(p.v));
    if (!points.length) {
      this.chart.replaceChildren(this.h("p", { class: "muted", testid: "anomaly-chart-empty" },
        "No anomaly scores yet: learn normal, or enable the motion model in the scene."));
      return;
    }
    const start = Math.max(t0, Math.min(points[0].t - 10, t1 - 60));
    const series = [
      { name: "anomaly score", color: SCORE_COLOR, points },
      { name: "event threshold", color: THRESHOLD_COLOR,
        points: [{ t: start, v: st.enter_score }, { t: t1, v: st.enter_score }] },
    ];
    this.chart.replaceChildren(lineChart(series, {
      t0: start, t1, width: 520, height: 150, yLabel: "anomaly score",
    }));
  }

  async learn(e) {
    e.preventDefault();
    this.error.textContent = "";
    const minutes = Number(this.minutes.value);
    try {
      const st = await api(`${this.base}/anomaly/learn`, {
        method: "POST", body: { duration_s: Math.round(minutes * 60 * 10) / 10 },
      });
      this.show(st);
    } catch (ex) {
      this.error.textContent = `Not started: ${ex.message}`;
    }
  }
}
