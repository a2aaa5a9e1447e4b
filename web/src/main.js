// The public dashboard: the open sensors of Dortmund and Schwerte on a map, coloured by
// the latest value of one metric, with a chart per sensor, a summary per city and each
// dataset's licence. Everything comes from the public API; nothing is computed on the
// server for this page alone.

import "leaflet/dist/leaflet.css";
import "uplot/dist/uPlot.min.css";
import "./style.css";

import L from "leaflet";

import {
  ApiError,
  loadCityCount,
  loadCityCounts,
  loadDatasets,
  loadDevices,
  loadLatest,
  loadMetrics,
  loadParking,
  loadSeries,
  loadWaste,
  setThrottleListener,
} from "./api.js";
import { clearChart, drawChart, resizeChart } from "./chart.js";
import {
  formatAgo,
  formatCompact,
  formatNumber,
  formatTime,
  formatValue,
  initialLanguage,
  locale,
  metricLabel,
  setLanguage,
  t,
  unitSymbol,
} from "./i18n.js";
import { bandPlacements, bandsApply, NO_VALUE_COLOUR, SILENT_COLOUR, scaleFor } from "./scale.js";

const CITIES = ["dortmund", "schwerte"];
const PLACEMENTS = ["outdoor", "indoor"];
// A counter's value on the map and in the summary: what it counted in the last hour.
const COUNT_WINDOW_MS = 3600_000;
// Both cities, for a map without any located sensor.
const DEFAULT_BOUNDS = L.latLngBounds([51.41, 7.33], [51.6, 7.64]);
// A sensor is silent after this many reporting intervals without an uplink.
const SILENT_AFTER_INTERVALS = 3;
const REFRESH_MS = 60_000;
// Time ranges of the chart and the bucket each is aggregated into on the server.
const RANGES = {
  "24h": { hours: 24, bucket: "15m" },
  "7d": { hours: 7 * 24, bucket: "1h" },
  "30d": { hours: 30 * 24, bucket: "1d" },
};
// The metrics offered first, and the default: what people ask about a city.
const PREFERRED_METRICS = ["temperature", "pm2_5", "co2", "occupancy", "relative_humidity", "pm10"];
// Device health, offered last.
const HEALTH_METRICS = ["battery", "battery_voltage"];
// Fingers need bigger targets than a mouse.
const coarsePointer = window.matchMedia("(pointer: coarse)").matches;
// Map and panels side by side (style.css puts them in one column below 56rem).
const wideLayout = window.matchMedia("(min-width: 56rem)");

const state = {
  config: readConfig(),
  metrics: new Map(), // name -> {name, unit, description}
  datasets: null, // slug -> dataset (open ones only); null when the API has no datasets
  devices: [],
  latest: new Map(), // dev_eui -> Map(metric -> {time, value})
  counts: new Map(), // dev_eui -> count of the last hour, of the counter metric `countsOf`
  cityCounts: new Map(), // "metric|dataset|city" -> what all the city's counters counted
  countWindow: null, // {from, to}: the hour the counts are of
  countsOf: null, // "metric|dataset|cities" the counts are of
  waste: null, // the open summaries, null when the API has none
  parking: null,
  filters: { city: "", metric: "", dataset: "" },
  selected: null, // {devEui, range}
  loadedAt: null,
  fitted: false,
};

const $ = (id) => document.getElementById(id);

function readConfig() {
  const element = document.getElementById("datahub-config");
  try {
    return JSON.parse(element.textContent);
  } catch {
    return { tile_url: "", tile_attribution: "", tile_max_zoom: 19 };
  }
}

// --- Map -------------------------------------------------------------------------------

const map = L.map("map", { zoomSnap: 0.25, minZoom: 9 });
map.fitBounds(DEFAULT_BOUNDS);
const markers = L.featureGroup().addTo(map);

const tileNotice = L.control({ position: "topright" });
tileNotice.onAdd = () => {
  const div = L.DomUtil.create("div", "map-notice");
  div.setAttribute("data-i18n", "map.tiles_unavailable");
  div.textContent = t("map.tiles_unavailable");
  return div;
};

if (state.config.tile_url) {
  const tiles = L.tileLayer(state.config.tile_url, {
    attribution: state.config.tile_attribution,
    maxZoom: state.config.tile_max_zoom,
  });
  let noticeShown = false;
  tiles.on("tileerror", () => {
    if (!noticeShown) {
      noticeShown = true;
      tileNotice.addTo(map);
    }
  });
  tiles.addTo(map);
}

// The legend folds away; on a phone it starts folded, to leave the map to the sensors.
const legend = L.control({ position: "bottomright" });
legend.onAdd = () => {
  const box = L.DomUtil.create("details", "legend");
  box.open = wideLayout.matches;
  L.DomEvent.disableClickPropagation(box);
  return box;
};
legend.addTo(map);

// --- Data ------------------------------------------------------------------------------

// An API without an endpoint (an older version): nothing to show of it.
const orNull = (error) => {
  if (error instanceof ApiError && error.status === 404) return null;
  throw error;
};

// The open summaries, into the state; an API without them leaves them null.
async function loadSummaries() {
  [state.waste, state.parking] = await Promise.all([
    loadWaste().catch(orNull),
    loadParking().catch(orNull),
  ]);
}

async function loadAll() {
  const [metrics, datasets, devices, latest] = await Promise.all([
    loadMetrics(),
    loadDatasets().catch(orNull),
    loadDevices(),
    loadLatest(),
    loadSummaries(),
  ]);
  state.metrics = new Map(metrics.map((m) => [m.name, m]));
  // The API gives anonymous callers open datasets only; the page relies on that and,
  // to be safe, shows nothing of any other licence class.
  state.datasets = datasets
    ? new Map(datasets.filter((d) => d.licence_class === "open").map((d) => [d.slug, d]))
    : null;
  setData(devices, latest);
}

async function refresh() {
  const [devices, latest] = await Promise.all([loadDevices(), loadLatest(), loadSummaries()]);
  setData(devices, latest);
  state.countsOf = null;
  await loadCounts();
}

// Whether `metric` is a running total on this device: shown as counts, never the total.
function isCounter(device, metric) {
  return (device.counters ?? []).includes(metric);
}

// The counts of the last hour of the chosen metric's counters, one call per city, and each
// city's count where it has personal counters: their own series are left out of the
// per-device counts (docs/privacy.md), the city-wide series holds them once there are
// `k_min` of them. Fewer, or withheld, the city shows what its other counters counted.
async function loadCounts() {
  const { metric, dataset } = state.filters;
  const cities = state.filters.city ? [state.filters.city] : CITIES;
  const key = `${metric}|${dataset}|${cities.join(",")}`;
  const counters = state.devices.filter((d) => isCounter(d, metric) && cities.includes(d.city));
  if (!counters.length || state.countsOf === key) return;
  const to = new Date();
  const from = new Date(to.getTime() - COUNT_WINDOW_MS);
  const withCounters = cities.filter((c) => counters.some((d) => d.city === c));
  // Only where the city has enough personal counters for the API to publish their sum.
  const kMin = state.config.k_min ?? 1;
  const withPersonal = withCounters.filter(
    (c) =>
      counters.filter(
        (d) => d.city === c && d.privacy === "personal" && (!dataset || d.dataset === dataset),
      ).length >= kMin,
  );
  const withheldAsNull = (error) => {
    if (error instanceof ApiError && error.error === "Withheld") return null;
    throw error;
  };
  const [series, cityCounts] = await Promise.all([
    Promise.all(withCounters.map((city) => loadCityCounts({ city, metric, from, to }))),
    Promise.all(
      withPersonal.map((city) =>
        loadCityCount({ city, metric, dataset, from, to })
          .catch(withheldAsNull)
          .then((count) => [`${metric}|${dataset}|${city}`, count]),
      ),
    ),
  ]);
  state.counts = new Map(
    series.flat().map((s) => [s.device, s.points.reduce((sum, point) => sum + point.value, 0)]),
  );
  state.cityCounts = new Map(cityCounts.filter(([, count]) => count !== null));
  state.countWindow = { from, to };
  state.countsOf = key;
}

function setData(devices, latest) {
  state.devices = devices.filter(
    (d) => !state.datasets || !d.dataset || state.datasets.has(d.dataset),
  );
  state.latest = new Map();
  for (const item of latest) {
    if (!state.latest.has(item.dev_eui)) state.latest.set(item.dev_eui, new Map());
    state.latest
      .get(item.dev_eui)
      .set(item.metric, { time: new Date(item.time), value: item.value });
  }
  state.loadedAt = new Date();
}

function isSilent(device, now) {
  if (!device.last_seen) return true;
  const interval = device.reporting_interval_s;
  if (!interval) return false;
  return now - new Date(device.last_seen) > SILENT_AFTER_INTERVALS * interval * 1000;
}

function latestOf(device, metric) {
  return state.latest.get(device.dev_eui)?.get(metric) ?? null;
}

// What the map and the summary show of a device: a counter's count of the last hour, or
// the latest value; null when there is none.
function shownValue(device, metric) {
  if (isCounter(device, metric)) {
    const count = state.counts.get(device.dev_eui);
    return count === undefined ? null : { value: count, counted: true };
  }
  return latestOf(device, metric);
}

// Devices of the open datasets matching the city and dataset filters (not the metric).
function devicesInScope({ city = state.filters.city } = {}) {
  return state.devices.filter(
    (d) =>
      (!city || d.city === city) && (!state.filters.dataset || d.dataset === state.filters.dataset),
  );
}

// --- Filters ---------------------------------------------------------------------------

function option(value, label) {
  const element = document.createElement("option");
  element.value = value;
  element.textContent = label;
  return element;
}

function metricsOffered() {
  const counts = new Map();
  for (const device of state.devices) {
    for (const metric of device.metrics) counts.set(metric, (counts.get(metric) ?? 0) + 1);
  }
  const rank = (name) => {
    const preferred = PREFERRED_METRICS.indexOf(name);
    if (preferred !== -1) return preferred;
    return HEALTH_METRICS.includes(name) ? 200 : 100;
  };
  return [...counts.keys()].sort(
    (a, b) => rank(a) - rank(b) || metricName(a).localeCompare(metricName(b)),
  );
}

function metricName(name) {
  return metricLabel(name, state.metrics.get(name)?.description);
}

function metricUnit(name) {
  return state.metrics.get(name)?.unit ?? null;
}

function renderFilters() {
  const { filters } = state;
  $("filter-city").replaceChildren(
    option("", t("filter.all_cities")),
    ...CITIES.map((c) => option(c, t(`city.${c}`))),
  );
  $("filter-city").value = filters.city;

  const metrics = metricsOffered();
  if (!metrics.includes(filters.metric)) filters.metric = metrics[0] ?? "";
  $("filter-metric").replaceChildren(...metrics.map((m) => option(m, metricName(m))));
  $("filter-metric").value = filters.metric;

  const datasetLabel = $("filter-dataset").closest("label");
  datasetLabel.hidden = !state.datasets;
  if (state.datasets) {
    const datasets = [...state.datasets.values()].sort((a, b) => a.name.localeCompare(b.name));
    if (filters.dataset && !state.datasets.has(filters.dataset)) filters.dataset = "";
    $("filter-dataset").replaceChildren(
      option("", t("filter.all_datasets")),
      ...datasets.map((d) => option(d.slug, d.name)),
    );
    $("filter-dataset").value = filters.dataset;
  }
}

function readHash() {
  const params = new URLSearchParams(window.location.hash.slice(1));
  state.filters.city = CITIES.includes(params.get("city")) ? params.get("city") : "";
  state.filters.metric = params.get("metric") ?? "";
  state.filters.dataset = params.get("dataset") ?? "";
  const sensor = params.get("sensor");
  state.selected = sensor
    ? { devEui: sensor, range: params.get("range") in RANGES ? params.get("range") : "24h" }
    : null;
}

function writeHash() {
  const params = new URLSearchParams();
  for (const [name, value] of Object.entries(state.filters)) if (value) params.set(name, value);
  if (state.selected) {
    params.set("sensor", state.selected.devEui);
    params.set("range", state.selected.range);
  }
  const hash = params.toString();
  window.history.replaceState(null, "", hash ? `#${hash}` : window.location.pathname);
}

// --- Rendering -------------------------------------------------------------------------

function render() {
  renderFilters();
  renderMap();
  renderSummary();
  renderCells();
  renderDatasets();
  renderDetail();
  writeHash();
}

function renderMap() {
  const now = new Date();
  const metric = state.filters.metric;
  const shown = devicesInScope().filter((d) => d.location && d.metrics.includes(metric));
  // Fixed bands only where they are meant for (PM outdoors, CO2 indoors); relative classes
  // over the values of the other sensors.
  const banded = (d) => !isCounter(d, metric) && bandsApply(metric, d.placement);
  const relativeValues = shown
    .filter((d) => !banded(d))
    .map((d) => shownValue(d, metric)?.value)
    .filter((v) => v !== undefined);
  const scales = {
    bands: scaleFor(metric, [], { banded: true }),
    relative: scaleFor(metric, relativeValues, { banded: false }),
  };
  const used = new Set();
  markers.clearLayers();
  for (const device of shown) {
    const silent = isSilent(device, now);
    const latest = shownValue(device, metric);
    const selected = state.selected?.devEui === device.dev_eui;
    const scale = scales.bands.kind === "states" || banded(device) ? scales.bands : scales.relative;
    if (latest && !silent) used.add(scale);
    let fill = latest ? scale.colourOf(latest.value) : NO_VALUE_COLOUR;
    if (silent) fill = SILENT_COLOUR;
    const classes = ["sensor", `sensor-${device.dev_eui}`, `city-${device.city}`];
    if (silent) classes.push("is-silent");
    if (!latest) classes.push("is-novalue");
    if (selected) classes.push("is-selected");
    const marker = L.circleMarker([device.location.latitude, device.location.longitude], {
      radius: (selected ? 3 : 0) + (coarsePointer ? 9 : 7),
      color: selected ? "#111" : "#444",
      weight: selected ? 3 : 1,
      fillColor: fill,
      fillOpacity: 0.9,
      className: classes.join(" "),
    });
    marker.bindTooltip(tooltipOf(device, metric, latest, silent));
    marker.on("click", () => selectSensor(device.dev_eui));
    marker.addTo(markers);
    if (selected) marker.bringToFront();
  }
  $("map").dataset.sensors = String(shown.length);
  renderLegend(
    [scales.bands, scales.relative].filter((s) => used.has(s)),
    metric,
    shown.some((d) => isCounter(d, metric)),
  );
  if (!state.fitted && shown.length) {
    fitToSensors();
    state.fitted = true;
  }
}

function fitToSensors() {
  // The panels beside the map have just been filled: measure the map again.
  map.invalidateSize();
  const bounds = markers.getBounds();
  // Keep the sensors clear of the legend in the bottom right corner.
  const corner = legend.getContainer();
  // Without animation: a second fit (filters changed in quick succession) while Leaflet
  // still animates the first leaves markers projected for the wrong view, undrawn.
  const options = {
    paddingTopLeft: [24, 24],
    paddingBottomRight: [corner.offsetWidth + 24, 24],
    maxZoom: 15,
    animate: false,
  };
  map.fitBounds(bounds.isValid() ? bounds : DEFAULT_BOUNDS, options);
}

function tooltipOf(device, metric, latest, silent) {
  // Built from elements, never from HTML: names come from the registry.
  const box = document.createElement("div");
  const name = document.createElement("strong");
  name.textContent = device.name;
  const value = document.createElement("div");
  value.textContent = latest
    ? latest.counted
      ? `${metricName(metric)}: ${formatNumber(latest.value)} ${t("legend.per_hour")}`
      : `${metricName(metric)}: ${formatValue(latest.value, metricUnit(metric))}`
    : t("legend.no_value");
  box.append(name, value);
  if (silent) {
    const note = document.createElement("div");
    note.textContent = device.last_seen
      ? t("detail.silent", { time: formatTime(new Date(device.last_seen)) })
      : t("detail.never_seen");
    box.append(note);
  }
  return box;
}

function swatch(colour, label, extraClass = "") {
  const row = document.createElement("div");
  row.className = `legend-row ${extraClass}`.trim();
  const box = document.createElement("span");
  box.className = "swatch";
  if (colour) box.style.backgroundColor = colour;
  const text = document.createElement("span");
  text.textContent = label;
  row.append(box, text);
  return row;
}

function legendSection(text, kind) {
  const note = document.createElement("div");
  note.className = `legend-section legend-${kind}`;
  note.textContent = text;
  return note;
}

function renderLegend(scales, metric, counted) {
  const box = legend.getContainer();
  const title = document.createElement("summary");
  title.className = "legend-title";
  const unit = counted ? t("legend.per_hour") : unitSymbol(metricUnit(metric));
  title.textContent = unit ? `${metricName(metric)} (${unit})` : metricName(metric);
  const rows = [];
  for (const scale of scales) {
    if (scale.kind === "states") {
      for (const s of scale.states) rows.push(swatch(s.colour, t(s.label)));
      continue;
    }
    // Say which classes are bands only where a metric has bands some sensors miss out on.
    if (scales.length > 1 || (scale.kind === "relative" && bandPlacements(metric).length)) {
      const placements = bandPlacements(metric);
      rows.push(
        scale.kind === "bands"
          ? legendSection(
              t("legend.bands", {
                placements:
                  placements.length > 1
                    ? t("placement.any")
                    : placements.map((p) => t(`placement.${p}`)).join(", "),
              }),
              "bands",
            )
          : legendSection(t("legend.relative"), "relative"),
      );
    }
    const { breaks, colours } = scale;
    rows.push(swatch(colours[0], `< ${formatCompact(breaks[0])}`));
    for (let i = 1; i < breaks.length; i++) {
      rows.push(
        swatch(colours[i], `${formatCompact(breaks[i - 1])} – ${formatCompact(breaks[i])}`),
      );
    }
    rows.push(swatch(colours[breaks.length], `≥ ${formatCompact(breaks[breaks.length - 1])}`));
  }
  rows.push(swatch(SILENT_COLOUR, t("legend.silent"), "legend-silent"));
  // Hollow, as its markers are: no fill to be taken for a colour of the scale.
  rows.push(swatch(null, t("legend.no_value"), "legend-novalue"));
  box.replaceChildren(title, ...rows);
}

function mean(values) {
  return values.length ? values.reduce((a, b) => a + b, 0) / values.length : null;
}

function renderSummary() {
  const now = new Date();
  const cities = state.filters.city ? [state.filters.city] : CITIES;
  const cards = [];
  for (const city of cities) {
    const devices = devicesInScope({ city });
    if (!devices.length) continue;
    const online = devices.filter((d) => !isSilent(d, now));
    const lastSeen = devices
      .map((d) => (d.last_seen ? new Date(d.last_seen) : null))
      .filter(Boolean)
      .reduce((a, b) => (a && a > b ? a : b), null);
    const card = document.createElement("article");
    card.className = "city";
    card.dataset.city = city;
    card.dataset.online = String(online.length);
    card.dataset.total = String(devices.length);
    const heading = document.createElement("h3");
    heading.textContent = t(`city.${city}`);
    const list = document.createElement("dl");
    const add = (key, label, text, title) => {
      const dt = document.createElement("dt");
      dt.textContent = label;
      const dd = document.createElement("dd");
      dd.textContent = text;
      dd.dataset.key = key;
      if (title) dd.title = title;
      list.append(dt, dd);
      return dd;
    };
    add(
      "online",
      t("summary.online"),
      t("summary.online_value", { online: online.length, total: devices.length }),
    );
    add(
      "last_update",
      t("summary.last_update"),
      lastSeen ? formatAgo(lastSeen, now) : t("summary.never"),
      lastSeen ? formatTime(lastSeen) : undefined,
    );
    // Headline values over the sensors that are online: a silent one's value is stale.
    // Means per placement (indoor and outdoor air differ); a sensor whose placement is
    // not known counts in neither. Counters: what they counted in the last hour, all of
    // the city's as the API counted them where it served that, else the sum of their own.
    const headline = ["pm2_5", "temperature", "co2"];
    const chosen = state.filters.metric;
    if (chosen && chosen !== "occupancy" && !headline.includes(chosen)) headline.push(chosen);
    for (const metric of headline) {
      const counters = online.filter((d) => isCounter(d, metric));
      if (counters.length) {
        const counts = counters
          .map((d) => state.counts.get(d.dev_eui))
          .filter((v) => v !== undefined);
        const cityCount = state.cityCounts.get(`${metric}|${state.filters.dataset}|${city}`);
        if (cityCount !== undefined || counts.length) {
          const total = cityCount ?? counts.reduce((a, b) => a + b, 0);
          const shown = add(
            `count_${metric}`,
            t("summary.count_hour", { metric: metricName(metric) }),
            formatNumber(total),
          );
          shown.dataset.from = state.countWindow.from.toISOString();
          shown.dataset.to = state.countWindow.to.toISOString();
        }
        continue;
      }
      for (const placement of PLACEMENTS) {
        const values = online
          .filter((d) => d.placement === placement)
          .map((d) => latestOf(d, metric)?.value)
          .filter((v) => v !== undefined);
        const average = mean(values);
        if (average === null) continue;
        add(
          `mean_${metric}_${placement}`,
          t("summary.mean_placed", {
            metric: metricName(metric),
            placement: t(`placement.${placement}`),
          }),
          formatValue(average, metricUnit(metric)),
        );
      }
    }
    const bays = online.filter((d) => d.metrics.includes("occupancy"));
    const states = bays.map((d) => latestOf(d, "occupancy")?.value).filter((v) => v !== undefined);
    if (states.length) {
      const free = states.filter((v) => v === 0).length;
      add(
        "free_bays",
        t("summary.free_bays"),
        t("summary.free_value", { free, total: states.length }),
      );
    }
    card.append(heading, list);
    cards.push(card);
  }
  if (!cards.length) {
    const empty = document.createElement("p");
    empty.textContent = t("summary.none");
    cards.push(empty);
  }
  $("summary").replaceChildren(...cards);
}

function licenceLink(licence) {
  if (!licence) return document.createTextNode("");
  const label = licence.name || licence.id;
  if (licence.url && /^https?:\/\//.test(licence.url)) {
    const link = document.createElement("a");
    link.href = licence.url;
    link.rel = "license noopener";
    link.target = "_blank";
    link.textContent = label;
    return link;
  }
  return document.createTextNode(label);
}

function renderDatasets() {
  const list = $("datasets");
  if (!state.datasets) {
    list.replaceChildren();
    list.closest("section").hidden = true;
    return;
  }
  list.closest("section").hidden = false;
  const counts = new Map();
  for (const device of state.devices)
    counts.set(device.dataset, (counts.get(device.dataset) ?? 0) + 1);
  const datasets = [...state.datasets.values()]
    .filter((d) => !state.filters.dataset || d.slug === state.filters.dataset)
    .sort((a, b) => a.name.localeCompare(b.name));
  const items = datasets.map((dataset) => {
    const item = document.createElement("li");
    item.dataset.dataset = dataset.slug;
    const name = document.createElement("strong");
    name.textContent = dataset.name;
    const supplier = document.createElement("div");
    supplier.className = "meta";
    supplier.textContent = `${dataset.supplier?.name ?? ""} · ${t("datasets.sensors", {
      count: dataset.device_count ?? counts.get(dataset.slug) ?? 0,
    })}`;
    const licence = document.createElement("div");
    licence.className = "licence";
    licence.append(document.createTextNode(t("detail.licence")), licenceLink(dataset.licence));
    item.append(name, supplier, licence);
    if (dataset.attribution) {
      const attribution = document.createElement("div");
      attribution.className = "attribution";
      attribution.textContent = t("datasets.attribution") + dataset.attribution;
      item.append(attribution);
    }
    return item;
  });
  if (!items.length) {
    const empty = document.createElement("li");
    empty.textContent = t("datasets.none");
    items.push(empty);
  }
  list.replaceChildren(...items);
}

// --- Open summaries: waste bins and parking per district --------------------------------

function cellItem(cell, figures) {
  const item = document.createElement("li");
  item.dataset.city = cell.city;
  item.dataset.area = cell.area ?? "";
  item.dataset.shown = String(cell.shown);
  const area = document.createElement("span");
  area.className = "area";
  const where = cell.area ?? t("cells.no_area");
  area.textContent = state.filters.city ? where : `${where} (${t(`city.${cell.city}`)})`;
  const text = document.createElement("div");
  text.className = "figures";
  text.textContent = figures;
  item.append(area, text);
  return item;
}

function freeOverTheDay(hours) {
  // One bar per hour, as high as the share of bays free; the numbers in the title.
  const width = 240;
  const height = 32;
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("width", String(width));
  svg.setAttribute("height", String(height));
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", t("parking.day"));
  svg.dataset.hours = JSON.stringify(hours.map((h) => [h.time, h.free, h.bays]));
  const step = width / 24;
  hours.forEach((hour, i) => {
    const share = hour.bays ? hour.free / hour.bays : 0;
    const bar = document.createElementNS(ns, "rect");
    bar.setAttribute("x", String(i * step + 1));
    bar.setAttribute("width", String(step - 2));
    bar.setAttribute("y", String(height - share * height));
    bar.setAttribute("height", String(Math.max(1, share * height)));
    bar.setAttribute("fill", "#1a9850");
    const title = document.createElementNS(ns, "title");
    title.textContent = `${formatTime(new Date(hour.time))}: ${formatNumber(hour.free)} / ${hour.bays}`;
    bar.append(title);
    svg.append(bar);
  });
  return svg;
}

function renderCellCard(kind, summary, figuresOf) {
  const card = $(`${kind}-card`);
  if (!summary) {
    card.hidden = true;
    return;
  }
  const cells = summary.cells.filter((c) => !state.filters.city || c.city === state.filters.city);
  card.hidden = !summary.cells.length;
  const items = cells.map((cell) => {
    if (!cell.shown) return cellItem(cell, t("cells.hidden", { k: summary.k }));
    return figuresOf(cell);
  });
  if (!items.length) {
    const empty = document.createElement("li");
    empty.textContent = t("cells.none");
    items.push(empty);
  }
  $(kind).replaceChildren(...items);
  const sources = summary.licences.map((l) => l.attribution).join("; ");
  $(`${kind}-source`).textContent = sources ? t("cells.source") + sources : "";
}

function renderCells() {
  renderCellCard("waste", state.waste, (cell) =>
    cellItem(
      cell,
      t("waste.cell", {
        bins: formatNumber(cell.bins),
        share: new Intl.NumberFormat(locale(), { style: "percent" }).format(cell.full_share),
      }),
    ),
  );
  renderCellCard("parking", state.parking, (cell) => {
    const item = cellItem(
      cell,
      t("parking.cell", { free: formatNumber(cell.free), bays: formatNumber(cell.bays) }),
    );
    if (cell.hours.length) item.append(freeOverTheDay(cell.hours));
    return item;
  });
}

// --- One sensor ------------------------------------------------------------------------

let chartRequest = 0;

function selectedDevice() {
  if (!state.selected) return null;
  const metric = state.filters.metric;
  return (
    devicesInScope().find(
      (d) => d.dev_eui === state.selected.devEui && d.metrics.includes(metric),
    ) ?? null
  );
}

function selectSensor(devEui) {
  const range = state.selected?.range ?? "24h";
  state.selected = { devEui, range };
  renderMap();
  renderDetail({ reloadChart: true });
  writeHash();
  // In one column (a phone) the sensor's panel is below the map: bring it into view.
  if (!wideLayout.matches) $("detail").scrollIntoView({ block: "start", behavior: "smooth" });
}

function closeDetail() {
  state.selected = null;
  chartRequest += 1;
  renderMap();
  renderDetail();
  writeHash();
}

function renderDetail({ reloadChart = false } = {}) {
  const panel = $("detail");
  const device = selectedDevice();
  if (!device) {
    if (state.selected && state.loadedAt) state.selected = null;
    panel.hidden = true;
    panel.dataset.sensor = "";
    clearChart($("chart"));
    return;
  }
  const changed =
    panel.dataset.sensor !== device.dev_eui || panel.dataset.metric !== state.filters.metric;
  panel.hidden = false;
  panel.dataset.sensor = device.dev_eui;
  panel.dataset.metric = state.filters.metric;
  const metric = state.filters.metric;
  const now = new Date();
  $("detail-heading").textContent = device.name;
  $("detail-meta").textContent = [t(`city.${device.city}`), device.supplier?.name, device.dev_eui]
    .filter(Boolean)
    .join(" · ");
  const latest = latestOf(device, metric);
  const lines = [];
  if (isCounter(device, metric)) {
    // A running total means nothing to a reader: the chart's counts say what was counted.
    lines.push(latest ? "" : t("detail.no_value"));
  } else {
    lines.push(
      latest
        ? t("detail.latest", {
            value: formatValue(latest.value, metricUnit(metric)),
            time: formatTime(latest.time),
          })
        : t("detail.no_value"),
    );
  }
  if (device.placement) {
    lines.push(t("detail.placement", { placement: t(`placement.${device.placement}`) }));
  }
  if (isSilent(device, now)) {
    lines.push(
      device.last_seen
        ? t("detail.silent", { time: formatTime(new Date(device.last_seen)) })
        : t("detail.never_seen"),
    );
  }
  $("detail-latest").textContent = lines.filter(Boolean).join(" ");
  const licence = $("detail-licence");
  const dataset = state.datasets?.get(device.dataset);
  if (dataset) {
    const line = document.createElement("div");
    line.textContent = t("detail.dataset", {
      name: dataset.name,
      supplier: dataset.supplier?.name ?? "",
    });
    const licenceLine = document.createElement("div");
    licenceLine.append(document.createTextNode(t("detail.licence")), licenceLink(dataset.licence));
    const parts = [line, licenceLine];
    if (dataset.attribution) {
      const attribution = document.createElement("div");
      attribution.textContent = t("datasets.attribution") + dataset.attribution;
      parts.push(attribution);
    }
    licence.replaceChildren(...parts);
  } else {
    licence.replaceChildren();
  }
  for (const button of document.querySelectorAll("[data-range]")) {
    button.setAttribute("aria-pressed", String(button.dataset.range === state.selected.range));
  }
  if (reloadChart || changed) loadChart(device, metric, state.selected.range);
}

async function loadChart(device, metric, range) {
  const request = ++chartRequest;
  const { hours, bucket } = RANGES[range];
  const to = new Date();
  const from = new Date(to.getTime() - hours * 3600_000);
  const caption = $("chart-caption");
  const chart = $("chart");
  chart.dataset.state = "loading";
  caption.textContent = t("chart.loading");
  $("chart-table-value").textContent = unitSymbol(metricUnit(metric)) || metricName(metric);
  const counter = isCounter(device, metric);
  try {
    const body = await loadSeries({ device: device.dev_eui, metric, bucket, from, to, counter });
    if (request !== chartRequest) return;
    const points = body.series[0]?.points ?? [];
    caption.textContent = t(counter ? "chart.caption_count" : "chart.caption", {
      metric: metricName(metric),
      bucket: t(`bucket.${bucket}`),
      range: t(`range.${range}`),
    });
    if (counter) {
      const total = points.reduce((sum, point) => sum + point.value, 0);
      $("detail-latest").textContent = [
        t("detail.counted", { range: t(`range_in.${range}`), count: formatNumber(total) }),
        device.placement
          ? t("detail.placement", { placement: t(`placement.${device.placement}`) })
          : "",
      ]
        .filter(Boolean)
        .join(" ");
      chart.dataset.total = String(total);
    }
    chart.dataset.bucket = bucket;
    chart.dataset.from = body.from;
    chart.dataset.to = body.to;
    if (!points.length) {
      clearChart(chart);
      $("chart-table").tBodies[0].replaceChildren();
      caption.textContent += ` — ${t("chart.empty")}`;
      chart.dataset.points = "0";
    } else {
      drawChart(chart, $("chart-table"), {
        points,
        label: metricName(metric),
        unit: counter ? "" : unitSymbol(body.unit),
        bars: counter,
      });
    }
    chart.dataset.state = "ready";
  } catch (error) {
    if (request !== chartRequest) return;
    clearChart(chart);
    // A personal sensor's own series is withheld by design (docs/privacy.md), not failed.
    const withheld = error instanceof ApiError && error.error === "Withheld";
    caption.textContent = withheld
      ? t("chart.withheld")
      : t("chart.failed", { error: error.message });
    chart.dataset.state = withheld ? "withheld" : "failed";
  }
}

// --- Events and start ------------------------------------------------------------------

// The page's status line; a wait for the API's rate limit shows over it for a while.
let currentStatus = [null, {}];

function showStatus(key, params = {}) {
  currentStatus = [key, params];
  renderStatus(key, params);
}

setThrottleListener((seconds) => {
  if (seconds > 0) renderStatus("status.throttled", { seconds });
  else renderStatus(...currentStatus);
});

function renderStatus(key, params) {
  const status = $("status");
  if (!key) {
    status.hidden = true;
    status.textContent = "";
    return;
  }
  status.hidden = false;
  status.textContent = t(key, params);
}

async function onFilterChange() {
  const city = $("filter-city").value;
  const cityChanged = city !== state.filters.city;
  state.filters.city = city;
  state.filters.metric = $("filter-metric").value;
  state.filters.dataset = state.datasets ? $("filter-dataset").value : "";
  render();
  if (cityChanged) fitToSensors();
  try {
    const before = state.countsOf;
    await loadCounts();
    if (state.countsOf !== before) render();
  } catch (error) {
    showStatus("status.failed", { error: error.message });
  }
}

for (const id of ["filter-city", "filter-metric", "filter-dataset"]) {
  $(id).addEventListener("change", onFilterChange);
}
$("filters").addEventListener("submit", (event) => event.preventDefault());
$("detail-close").addEventListener("click", closeDetail);
for (const button of document.querySelectorAll("[data-range]")) {
  button.addEventListener("click", () => {
    if (!state.selected) return;
    state.selected.range = button.dataset.range;
    renderDetail({ reloadChart: true });
    writeHash();
  });
}
for (const button of document.querySelectorAll("[data-lang]")) {
  button.addEventListener("click", () => {
    setLanguage(button.dataset.lang, { remember: true });
    renderStatus(...currentStatus);
    if (state.loadedAt) {
      render();
      const device = selectedDevice();
      if (device) loadChart(device, state.filters.metric, state.selected.range);
    }
  });
}
// An address edited by hand, or back and forward: show what it names.
window.addEventListener("hashchange", async () => {
  if (!state.loadedAt) return;
  readHash();
  render();
  if (state.selected) renderDetail({ reloadChart: true });
  await loadCounts().catch(() => {});
  render();
});
let resizeTimer = null;
window.addEventListener("resize", () => {
  window.clearTimeout(resizeTimer);
  resizeTimer = window.setTimeout(() => resizeChart($("chart")), 150);
});

async function start() {
  setLanguage(initialLanguage());
  readHash();
  showStatus("status.loading");
  document.body.dataset.state = "loading";
  try {
    await loadAll();
    renderFilters();
    await loadCounts();
    showStatus(state.devices.length ? null : "status.empty");
    render();
    if (state.selected) renderDetail({ reloadChart: true });
    document.body.dataset.state = "ready";
  } catch (error) {
    showStatus("status.failed", { error: error.message });
    document.body.dataset.state = "failed";
    window.setTimeout(start, REFRESH_MS);
    return;
  }
  window.setInterval(async () => {
    try {
      await refresh();
      showStatus(state.devices.length ? null : "status.empty");
      render();
    } catch (error) {
      showStatus("status.failed", { error: error.message });
    }
  }, REFRESH_MS);
}

start();
