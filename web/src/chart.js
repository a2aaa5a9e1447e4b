// One sensor's series as a uPlot line chart, with the same points as a table (for screen
// readers, and to read the exact values).

import uPlot from "uplot";
import { formatNumber, formatTime, locale } from "./i18n.js";

let plot = null;

export function clearChart(container) {
  if (plot) {
    plot.destroy();
    plot = null;
  }
  container.replaceChildren();
}

export function drawChart(container, table, { points, label, unit }) {
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
      scales: { x: { time: true } },
      axes: [
        { stroke: "#444", grid: { stroke: "#eee" }, values: timeTicks(), size: 44 },
        {
          stroke: "#444",
          grid: { stroke: "#eee" },
          size: 56,
          values: (_, ticks) => ticks.map((v) => formatNumber(v)),
          label: unit || undefined,
          labelSize: unit ? 18 : 0,
        },
      ],
      series: [
        {},
        {
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
