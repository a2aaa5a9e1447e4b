// German and English labels. The page starts in the language its address names
// (`?lang=de`), else the visitor's choice (kept in localStorage), else the first of the
// browser's languages it has, else English.

const STORAGE_KEY = "datahub.dashboard.lang";
export const LANGUAGES = ["de", "en"];

const MESSAGES = {
  en: {
    title: "Open sensor data",
    subtitle: "Dortmund and Schwerte",
    "filter.city": "City",
    "filter.metric": "Metric",
    "filter.dataset": "Dataset",
    "filter.all_cities": "Both cities",
    "filter.all_datasets": "All open datasets",
    "map.heading": "Map of the sensors",
    "map.tiles_unavailable": "Map background unavailable; the sensors are shown without it.",
    "legend.silent": "silent (no uplink for over 3 reporting intervals)",
    "legend.relative":
      "Relative classes over the values shown (no health bands for this placement):",
    "legend.bands": "Bands for {placements} air:",
    "legend.per_hour": "per hour",
    "legend.no_value": "no value yet",
    "legend.free": "free",
    "legend.occupied": "occupied",
    "detail.close": "Close",
    "detail.latest": "Latest: {value} at {time}",
    "detail.no_value": "No value of this metric yet.",
    "detail.silent": "Silent since {time}.",
    "detail.never_seen": "Has not reported yet.",
    "detail.dataset": "Dataset: {name} · {supplier}",
    "detail.licence": "Licence: ",
    "detail.counted": "Counted in the {range}: {count}",
    "detail.placement": "Placement: {placement}",
    "chart.range": "Time range",
    "chart.caption": "{metric}, mean per {bucket}, {range}",
    "chart.caption_count": "{metric}, count per {bucket}, {range}",
    "chart.empty": "No readings in this time range.",
    "chart.loading": "Loading…",
    "chart.failed": "The chart could not be loaded: {error}",
    "chart.withheld":
      "This sensor counts people: its own counts are not published, only totals over several such sensors.",
    "chart.table": "Values as a table",
    "chart.time": "Time",
    "range.24h": "24 h",
    "range.7d": "7 days",
    "range.30d": "30 days",
    "range_in.24h": "last 24 h",
    "range_in.7d": "last 7 days",
    "range_in.30d": "last 30 days",
    "bucket.15m": "15 minutes",
    "bucket.1h": "hour",
    "bucket.1d": "day",
    "summary.heading": "The cities now",
    "summary.online": "Sensors online",
    "summary.online_value": "{online} of {total}",
    "summary.last_update": "Last update",
    "summary.never": "none yet",
    "summary.mean": "Mean {metric}",
    "summary.free_bays": "Free parking bays",
    "summary.free_value": "{free} of {total}",
    "summary.none": "No open sensors match the filters.",
    "summary.mean_placed": "Mean {metric}, {placement}",
    "summary.count_hour": "{metric}, last hour",
    "placement.indoor": "indoors",
    "placement.outdoor": "outdoors",
    "placement.any": "indoor and outdoor",
    "waste.heading": "Waste bins by district",
    "waste.cell": "{bins} bins, {share} above 80 % full",
    "parking.heading": "Parking by zone",
    "parking.cell": "{free} of {bays} bays free now",
    "parking.day": "Free bays over the last 24 hours",
    "cells.hidden": "fewer than {k} sensors: not shown",
    "cells.none": "No figures for the chosen city.",
    "cells.no_area": "without district",
    "cells.source": "Source: ",
    "datasets.heading": "Datasets and licences",
    "datasets.sensors": "{count} sensors",
    "datasets.attribution": "Attribution: ",
    "datasets.none": "No open datasets.",
    "status.loading": "Loading the sensors…",
    "status.failed": "The data could not be loaded ({error}); retrying in a minute.",
    "status.empty": "No open sensors yet.",
    "status.throttled": "Many requests at the moment; trying again in {seconds} s.",
    "footer.text": "Open data of the cities' shared LoRaWAN platform.",
    "footer.api": "API documentation",
    "city.dortmund": "Dortmund",
    "city.schwerte": "Schwerte",
    "ago.now": "just now",
    "ago.minutes": "{n} min ago",
    "ago.hours": "{n} h ago",
    "ago.days": "{n} d ago",
  },
  de: {
    title: "Offene Sensordaten",
    subtitle: "Dortmund und Schwerte",
    "filter.city": "Stadt",
    "filter.metric": "Messgröße",
    "filter.dataset": "Datensatz",
    "filter.all_cities": "Beide Städte",
    "filter.all_datasets": "Alle offenen Datensätze",
    "map.heading": "Karte der Sensoren",
    "map.tiles_unavailable":
      "Kartenhintergrund nicht verfügbar; die Sensoren werden ohne ihn gezeigt.",
    "legend.silent": "stumm (seit über 3 Meldeintervallen keine Nachricht)",
    "legend.relative":
      "Relative Klassen über die gezeigten Werte (keine Gesundheitsbänder für diesen Standort):",
    "legend.bands": "Bänder für Luft {placements}:",
    "legend.per_hour": "je Stunde",
    "legend.no_value": "noch kein Wert",
    "legend.free": "frei",
    "legend.occupied": "belegt",
    "detail.close": "Schließen",
    "detail.latest": "Zuletzt: {value} um {time}",
    "detail.no_value": "Noch kein Wert dieser Messgröße.",
    "detail.silent": "Stumm seit {time}.",
    "detail.never_seen": "Hat noch nichts gemeldet.",
    "detail.dataset": "Datensatz: {name} · {supplier}",
    "detail.licence": "Lizenz: ",
    "detail.counted": "Gezählt in den {range}: {count}",
    "detail.placement": "Standort: {placement}",
    "chart.range": "Zeitraum",
    "chart.caption": "{metric}, Mittel je {bucket}, {range}",
    "chart.caption_count": "{metric}, Anzahl je {bucket}, {range}",
    "chart.empty": "Keine Messwerte in diesem Zeitraum.",
    "chart.loading": "Wird geladen…",
    "chart.failed": "Das Diagramm konnte nicht geladen werden: {error}",
    "chart.withheld":
      "Dieser Sensor zählt Menschen: Seine eigenen Zählungen werden nicht veröffentlicht, nur Summen über mehrere solche Sensoren.",
    "chart.table": "Werte als Tabelle",
    "chart.time": "Zeit",
    "range.24h": "24 Std.",
    "range.7d": "7 Tage",
    "range.30d": "30 Tage",
    "range_in.24h": "letzten 24 Std.",
    "range_in.7d": "letzten 7 Tagen",
    "range_in.30d": "letzten 30 Tagen",
    "bucket.15m": "15 Minuten",
    "bucket.1h": "Stunde",
    "bucket.1d": "Tag",
    "summary.heading": "Die Städte jetzt",
    "summary.online": "Sensoren online",
    "summary.online_value": "{online} von {total}",
    "summary.last_update": "Letzte Meldung",
    "summary.never": "noch keine",
    "summary.mean": "Mittel {metric}",
    "summary.free_bays": "Freie Parkplätze",
    "summary.free_value": "{free} von {total}",
    "summary.none": "Keine offenen Sensoren passen zu den Filtern.",
    "summary.mean_placed": "Mittel {metric}, {placement}",
    "summary.count_hour": "{metric}, letzte Stunde",
    "placement.indoor": "innen",
    "placement.outdoor": "außen",
    "placement.any": "innen und außen",
    "waste.heading": "Abfallbehälter nach Stadtbezirk",
    "waste.cell": "{bins} Behälter, {share} über 80 % voll",
    "parking.heading": "Parken nach Zone",
    "parking.cell": "{free} von {bays} Plätzen jetzt frei",
    "parking.day": "Freie Plätze in den letzten 24 Stunden",
    "cells.hidden": "weniger als {k} Sensoren: nicht gezeigt",
    "cells.none": "Keine Zahlen für die gewählte Stadt.",
    "cells.no_area": "ohne Bezirk",
    "cells.source": "Quelle: ",
    "datasets.heading": "Datensätze und Lizenzen",
    "datasets.sensors": "{count} Sensoren",
    "datasets.attribution": "Namensnennung: ",
    "datasets.none": "Keine offenen Datensätze.",
    "status.loading": "Die Sensoren werden geladen…",
    "status.failed":
      "Die Daten konnten nicht geladen werden ({error}); neuer Versuch in einer Minute.",
    "status.empty": "Noch keine offenen Sensoren.",
    "status.throttled": "Gerade viele Anfragen; neuer Versuch in {seconds} s.",
    "footer.text": "Offene Daten der gemeinsamen LoRaWAN-Plattform der Städte.",
    "footer.api": "API-Dokumentation",
    "city.dortmund": "Dortmund",
    "city.schwerte": "Schwerte",
    "ago.now": "gerade eben",
    "ago.minutes": "vor {n} Min.",
    "ago.hours": "vor {n} Std.",
    "ago.days": "vor {n} Tagen",
  },
};

// The canonical metrics (decoders/metrics.py); a metric missing here shows the API's
// description instead.
const METRIC_LABELS = {
  en: {
    temperature: "Temperature",
    external_temperature: "Probe temperature",
    relative_humidity: "Humidity",
    barometric_pressure: "Air pressure",
    illuminance: "Illuminance",
    co2: "CO₂",
    tvoc: "TVOC",
    hcho: "Formaldehyde",
    pm1_0: "PM1",
    pm2_5: "PM2.5",
    pm10: "PM10",
    occupancy: "Parking occupancy",
    motion_count: "Motion events",
    people_in: "People in",
    people_out: "People out",
    pulse_count: "Meter pulses",
    distance: "Distance (fill level)",
    fill_level: "Fill level",
    battery_voltage: "Battery voltage",
    battery: "Battery",
  },
  de: {
    temperature: "Temperatur",
    external_temperature: "Fühlertemperatur",
    relative_humidity: "Luftfeuchte",
    barometric_pressure: "Luftdruck",
    illuminance: "Beleuchtungsstärke",
    co2: "CO₂",
    tvoc: "TVOC",
    hcho: "Formaldehyd",
    pm1_0: "PM1",
    pm2_5: "PM2,5",
    pm10: "PM10",
    occupancy: "Parkplatzbelegung",
    motion_count: "Bewegungen",
    people_in: "Personen hinein",
    people_out: "Personen hinaus",
    pulse_count: "Zählerimpulse",
    distance: "Abstand (Füllstand)",
    fill_level: "Füllstand",
    battery_voltage: "Batteriespannung",
    battery: "Batterie",
  },
};

// UCUM symbols as the API gives them -> as people write them.
const UNIT_SYMBOLS = {
  Cel: "°C",
  "%RH": "%",
  "ug/m3": "µg/m³",
  "mg/m3": "mg/m³",
  1: "",
};

let current = "en";

export function initialLanguage() {
  const asked = new URLSearchParams(window.location.search).get("lang");
  if (LANGUAGES.includes(asked)) return asked;
  let stored = null;
  try {
    stored = window.localStorage.getItem(STORAGE_KEY);
  } catch {
    // Storage may be disabled; the browser's language decides then.
  }
  if (LANGUAGES.includes(stored)) return stored;
  for (const tag of navigator.languages || [navigator.language || ""]) {
    const base = String(tag).toLowerCase().split("-")[0];
    if (LANGUAGES.includes(base)) return base;
  }
  return "en";
}

export function setLanguage(lang, { remember = false } = {}) {
  current = LANGUAGES.includes(lang) ? lang : "en";
  document.documentElement.lang = current;
  if (remember) {
    try {
      window.localStorage.setItem(STORAGE_KEY, current);
    } catch {
      // Not remembered; nothing else depends on it.
    }
    // The address names the language too, so a shared link shows what the sharer saw.
    const url = new URL(window.location.href);
    url.searchParams.set("lang", current);
    window.history.replaceState(null, "", url);
  }
  for (const el of document.querySelectorAll("[data-i18n]")) {
    el.textContent = t(el.dataset.i18n);
  }
  for (const el of document.querySelectorAll("[data-i18n-label]")) {
    el.setAttribute("aria-label", t(el.dataset.i18nLabel));
  }
  for (const button of document.querySelectorAll("[data-lang]")) {
    button.setAttribute("aria-pressed", String(button.dataset.lang === current));
  }
}

export function language() {
  return current;
}

export function locale() {
  return current === "de" ? "de-DE" : "en-GB";
}

export function t(key, params = {}) {
  const text = MESSAGES[current][key] ?? MESSAGES.en[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => String(params[name] ?? ""));
}

export function metricLabel(name, description) {
  return METRIC_LABELS[current][name] ?? description ?? name;
}

export function unitSymbol(unit) {
  if (unit == null) return "";
  return UNIT_SYMBOLS[unit] ?? unit;
}

export function formatNumber(value, { digits } = {}) {
  const abs = Math.abs(value);
  const maximumFractionDigits = digits ?? (abs >= 100 ? 0 : abs >= 10 ? 1 : 2);
  return new Intl.NumberFormat(locale(), { maximumFractionDigits }).format(value);
}

// A number in at most about six characters: compact (1.4M, 1,4 Mio.) from ten thousand on,
// for chart axes and other tight places.
export function formatCompact(value) {
  if (Math.abs(value) < 10_000) return formatNumber(value);
  return new Intl.NumberFormat(locale(), { notation: "compact", maximumFractionDigits: 1 }).format(
    value,
  );
}

export function formatValue(value, unit) {
  const symbol = unitSymbol(unit);
  return symbol ? `${formatNumber(value)} ${symbol}` : formatNumber(value);
}

export function formatTime(date) {
  return new Intl.DateTimeFormat(locale(), { dateStyle: "medium", timeStyle: "short" }).format(
    date,
  );
}

export function formatAgo(date, now = new Date()) {
  const minutes = Math.floor((now - date) / 60000);
  if (minutes < 1) return t("ago.now");
  if (minutes < 60) return t("ago.minutes", { n: minutes });
  const hours = Math.floor(minutes / 60);
  if (hours < 48) return t("ago.hours", { n: hours });
  return t("ago.days", { n: Math.floor(hours / 24) });
}
