// The operator page: device health, gateways and open alarms, read with an API key
// (an administrator's sees every device, a supplier's key its own devices only). The key
// stays in this tab's sessionStorage and goes only to this origin's API.

import "leaflet/dist/leaflet.css";
import "./operator.css";

import L from "leaflet";

const KEY = "datahub-operator-key";
const REFRESH_MS = 60_000;
const COLOURS = { ok: "#1a7f37", late: "#bf8700", silent: "#cf222e" };
const DEFAULT_BOUNDS = L.latLngBounds([51.41, 7.33], [51.6, 7.64]);

const $ = (id) => document.getElementById(id);
let map = null;
let markers = null;
let timer = null;

function readConfig() {
  try {
    return JSON.parse($("datahub-config").textContent);
  } catch {
    return {};
  }
}

async function api(path, options = {}) {
  const response = await fetch(path, {
    ...options,
    headers: { Accept: "application/json", Authorization: `Bearer ${sessionStorage.getItem(KEY)}` },
  });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(`${response.status} ${body.error || ""}: ${body.detail || ""}`);
  return body;
}

function say(text) {
  $("status").hidden = !text;
  $("status").textContent = text || "";
}

const time = (value) => (value ? new Date(value).toLocaleString() : "–");
const num = (value, digits = 1) =>
  value === null || value === undefined ? "–" : value.toFixed(digits);
const pct = (value) =>
  value === null || value === undefined ? "–" : `${(value * 100).toFixed(1)} %`;

function cell(row, text, className) {
  const td = row.insertCell();
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

function fill(id, items, render) {
  const body = $(id).tBodies[0];
  body.replaceChildren();
  for (const item of items) render(body.insertRow(), item);
}

function showDevices(devices) {
  const status = $("filter-status").value;
  const shown = devices.items.filter((d) => !status || d.status === status);
  $("counts").replaceChildren(
    ...["ok", "late", "silent"].map((s) => {
      const span = document.createElement("span");
      span.className = `state-${s}`;
      span.textContent = `${s}: ${devices.counts[s] || 0}`;
      return span;
    }),
  );
  fill("devices", shown, (row, d) => {
    cell(row, d.dev_eui);
    cell(row, d.name);
    cell(row, d.city);
    cell(row, d.status, `state-${d.status}`);
    cell(row, time(d.last_seen));
    cell(row, d.loss_24h ? pct(d.loss_24h.ratio) : "–", "num");
    cell(row, d.loss_7d ? pct(d.loss_7d.ratio) : "–", "num");
    cell(row, d.radio ? num(d.radio.rssi_median, 0) : "–", "num");
    cell(row, d.radio ? num(d.radio.snr_median) : "–", "num");
    cell(
      row,
      d.battery ? `${num(d.battery.value, 2)} ${d.battery.metric === "battery" ? "%" : "V"}` : "–",
      "num",
    );
    cell(row, d.battery?.empty_at ? time(d.battery.empty_at) : "–");
    cell(row, d.airtime ? pct(d.airtime.share) : "–", "num");
  });
}

function showMap(devices, coverage) {
  const config = readConfig();
  if (!map) {
    map = L.map("map", { maxZoom: config.tile_max_zoom || 19 });
    if (config.tile_url) {
      L.tileLayer(config.tile_url, {
        attribution: config.tile_attribution,
        maxZoom: config.tile_max_zoom,
      }).addTo(map);
    }
    markers = L.layerGroup().addTo(map);
  }
  markers.clearLayers();
  const heard = new Map(
    coverage.features.map((f) => [f.properties.dev_eui, f.properties.gateways]),
  );
  const points = [];
  for (const d of devices.items) {
    const feature = coverage.features.find((f) => f.properties.dev_eui === d.dev_eui);
    if (!feature) continue;
    const [lon, lat] = feature.geometry.coordinates;
    points.push([lat, lon]);
    // Built as text nodes: names come from the registry, never markup.
    const popup = document.createElement("div");
    const lines = [d.name, d.dev_eui, d.status];
    for (const g of heard.get(d.dev_eui) || [])
      lines.push(`${g.gateway_id} (${num(g.rssi_best, 0)} dBm)`);
    for (const line of lines) {
      const div = document.createElement("div");
      div.textContent = line;
      popup.append(div);
    }
    L.circleMarker([lat, lon], { radius: 6, color: COLOURS[d.status], fillOpacity: 0.8 })
      .bindPopup(popup)
      .addTo(markers);
  }
  if (points.length) map.fitBounds(points, { maxZoom: 15 });
  else map.fitBounds(DEFAULT_BOUNDS);
}

function showAlarms(alarms) {
  fill("alarms", alarms.items, (row, a) => {
    cell(row, a.rule);
    cell(row, a.device_name ? `${a.device_name} (${a.subject})` : a.subject);
    cell(row, a.state, `state-${a.state}`);
    cell(row, time(a.opened_at));
    cell(row, a.detail);
    const action = row.insertCell();
    if (a.state === "open") {
      const button = document.createElement("button");
      button.textContent = "Acknowledge";
      button.addEventListener("click", async () => {
        button.disabled = true;
        try {
          await api(`/v1/operations/alarms/${a.id}/acknowledge`, { method: "POST" });
          await refresh();
        } catch (error) {
          say(String(error.message));
        }
      });
      action.append(button);
    }
  });
}

function showGateways(gateways) {
  fill("gateways", gateways.items, (row, g) => {
    cell(row, g.gateway_id);
    cell(row, g.city);
    cell(row, g.network);
    cell(row, g.status, `state-${g.status}`);
    cell(row, time(g.last_heard));
    cell(row, num(g.uplinks_per_hour), "num");
    cell(row, String(g.devices_24h), "num");
    cell(row, g.rssi ? num(g.rssi.median, 0) : "–", "num");
  });
}

let lastDevices = null;

async function refresh() {
  try {
    const [devices, coverage, alarms, gateways] = await Promise.all([
      api("/v1/operations/devices"),
      api("/v1/operations/coverage"),
      api("/v1/operations/alarms"),
      api("/v1/operations/gateways"),
    ]);
    lastDevices = devices;
    $("views").hidden = false;
    say("");
    showDevices(devices);
    showAlarms(alarms);
    showGateways(gateways);
    showMap(devices, coverage);
  } catch (error) {
    say(`The operator views could not be read: ${error.message}`);
  }
}

function start() {
  $("forget").hidden = false;
  refresh();
  window.clearInterval(timer);
  timer = window.setInterval(refresh, REFRESH_MS);
}

$("key-form").addEventListener("submit", (event) => {
  event.preventDefault();
  sessionStorage.setItem(KEY, $("key").value.trim());
  $("key").value = "";
  start();
});
$("forget").addEventListener("click", () => {
  sessionStorage.removeItem(KEY);
  window.clearInterval(timer);
  $("views").hidden = true;
  $("forget").hidden = true;
});
$("filter-status").addEventListener("change", () => lastDevices && showDevices(lastDevices));
if (sessionStorage.getItem(KEY)) start();
