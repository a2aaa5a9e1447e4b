// One sensor's series as a uPlot line chart, with the same points as a table (for screen
// readers, and to read the exact values).

import uPlot from "uplot";
import { formatCompact, formatNumber, formatTime, locale } from "./i18n.js";

let plot = null;

// The axes' font, set explicitly so that the labels can be measured before they are drawn.
export const AXIS_FONT = '12px system-ui, -apple-system, "Segoe UI", Roboto, sans-serif';
// uPlot's defaults: tick marks of 10 px and a gap of 5 px between tick and label.
export const AXIS_TICK_PX = 10;
export const AXIS_GAP_PX = 5;
const UNIT_LABEL_PX = 18;
let measurer = null;

function textWidth(text) {
  measurer ??= document.createElement("canvas").getContext("2d");
  measurer.font = AXIS_FONT;
  return Math.max(
    ...String(text)
      .split("\n")
      .map((line) => measurer.measureText(line).width),
  );
}

// The y axis as wide as its widest label (compact numbers), so that no label is cut.
function yAxisSize(container, unit) {
  return (_self, values) => {
    const labels = values ?? [];
    const widest = labels.length ? Math.max(...labels.map(textWidth)) : 0;
    const size = Math.ceil(widest) + AXIS_TICK_PX + AXIS_GAP_PX + 4 + (unit ? UNIT_LABEL_PX : 0);
    container.dataset.yLabels = JSON.stringify(labels);
    container.dataset.yFont = AXIS_FONT;
    container.dataset.yAxisSize = String(size);
    container.dataset.yUnitSize = String(unit ? UNIT_LABEL_PX : 0);
    return size;
  };
}

export function clearChart(container) {
  if (plot) {
    plot.destroy();
    plot = null;
  }
  container.replaceChildren();
}

export function drawChart(container, table, { points, label, unit, bars = false }) {
  clearChart(container);
  const times = points.map((p) => new Date(p.time).getTime() / 1000);
  const values = points.map((p) => p.value);
  const width = Math.max(240, Math.floor(container.getBoundingClientRect().width));
  plot = new uPlot(
    {
      width,
      height: 220,
      legend: { show: false },
      cursor: { drag: { x: false, y: false } },
      axes: [
        {
          stroke: "#444",
          grid: { stroke: "#eee" },
          values: timeTicks(),
          size: 44,
          font: AXIS_FONT,
        },
        {
          stroke: "#444",
          grid: { stroke: "#eee" },
          font: AXIS_FONT,
          size: yAxisSize(container, unit),
          values: (_, ticks) => ticks.map((v) => formatCompact(v)),
          label: unit || undefined,
          labelSize: unit ? UNIT_LABEL_PX : 0,
        },
      ],
      // Counts per interval are bars from zero; means a line.
      scales: bars
        ? { x: { time: true }, y: { range: (_self, _min, max) => [0, Math.max(1, max * 1.1)] } }
        : { x: { time: true } },
      series: [
        {},
        bars
          ? {
              label,
              stroke: "#1f6fb2",
              fill: "rgba(31, 111, 178, 0.55)",
              paths: uPlot.paths.bars({ size: [0.8, 40] }),
              points: { show: false },
            }
          : {
              label,
              stroke: "#1f6fb2",
              width: 2,
              fill: "rgba(31, 111, 178, 0.08)",
              points: { show: points.length <= 48, size: 5 },
            },
      ],
    },
    [times, values],
    container,
  );
  container.dataset.points = String(points.length);
  container.dataset.kind = bars ? "count" : "mean";
  fillTable(table, points);
}

// Tick labels in the page's language: 24-hour times with the date under midnight, or dates.
function timeTicks() {
  const time = new Intl.DateTimeFormat(locale(), { hour: "2-digit", minute: "2-digit" });
  const day = new Intl.DateTimeFormat(locale(), { day: "numeric", month: "short" });
  return (_, ticks, _axis, _space, increment) =>
    ticks.map((seconds) => {
      const date = new Date(seconds * 1000);
      if (increment >= 86400) return day.format(date);
      const label = time.format(date);
      return date.getHours() === 0 && date.getMinutes() === 0
        ? `${label}\n${day.format(date)}`
        : label;
    });
}

export function resizeChart(container) {
  if (plot) {
    const width = Math.max(240, Math.floor(container.getBoundingClientRect().width));
    plot.setSize({ width, height: 220 });
  }
}

function fillTable(table, points) {
  const body = table.tBodies[0];
  body.replaceChildren(
    ...points.map((p) => {
      const row = document.createElement("tr");
      row.dataset.time = p.time;
      row.dataset.value = String(p.value);
      const time = document.createElement("td");
      time.textContent = formatTime(new Date(p.time));
      const value = document.createElement("td");
      value.textContent = formatNumber(p.value);
      row.append(time, value);
      return row;
    }),
  );
}
