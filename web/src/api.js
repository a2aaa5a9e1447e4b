// The public API, read as an anonymous caller: the server decides what that may see
// (open datasets only), so the page never asks for more than anyone could.
//
// Anonymous callers are rate-limited per address (20 requests/s by default). The page
// asks for whole lists at once (every sensor's latest values in one call), so it stays
// far below that; should a limit be hit all the same (e.g. many visitors behind one
// address), it waits as the 429's Retry-After says and asks again, a few times.

const MAX_ATTEMPTS = 4;
// A longer wait (a quota, not the per-second limit) is not waited for: the call fails.
const MAX_RETRY_WAIT_S = 30;

let onThrottled = () => {};

// Tell `listener(seconds)` whenever a call waits out a 429; `listener(0)` when it goes on.
export function setThrottleListener(listener) {
  onThrottled = listener;
}

export class ApiError extends Error {
  constructor(status, error, detail, retryAfter = null) {
    super(detail ? `${status} ${error}: ${detail}` : `${status} ${error}`);
    this.status = status;
    this.error = error;
    this.retryAfter = retryAfter;
  }
}

// Retry-After in seconds: delta-seconds or an HTTP date; 1 when missing or unreadable.
function retryAfterOf(response) {
  const value = response.headers.get("Retry-After");
  if (!value) return 1;
  if (/^\d+$/.test(value.trim())) return Number(value.trim());
  const date = Date.parse(value);
  return Number.isNaN(date) ? 1 : Math.max(0, Math.ceil((date - Date.now()) / 1000));
}

const sleep = (ms) => new Promise((resolve) => window.setTimeout(resolve, ms));

export async function getJson(path, params = {}) {
  const url = new URL(path, window.location.origin);
  for (const [name, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") url.searchParams.set(name, value);
  }
  for (let attempt = 1; ; attempt++) {
    const response = await fetch(url, { headers: { Accept: "application/json" } });
    if (response.ok) {
      if (attempt > 1) onThrottled(0);
      return response.json();
    }
    const retryAfter = response.status === 429 ? retryAfterOf(response) : null;
    if (retryAfter !== null && retryAfter <= MAX_RETRY_WAIT_S && attempt < MAX_ATTEMPTS) {
      onThrottled(retryAfter);
      // Spread the retries of calls refused in the same second.
      await sleep(retryAfter * 1000 + Math.random() * 250 * attempt);
      continue;
    }
    let body = {};
    try {
      body = await response.json();
    } catch {
      // Not the API's JSON error: the status says enough.
    }
    if (attempt > 1) onThrottled(0);
    throw new ApiError(response.status, body.error || response.statusText, body.detail, retryAfter);
  }
}

// Every item of a paged list, following `next_cursor`.
export async function getAllPages(path, params = {}) {
  const items = [];
  let cursor = null;
  do {
    const page = await getJson(path, { ...params, cursor });
    items.push(...page.items);
    cursor = page.next_cursor;
  } while (cursor);
  return items;
}

export function loadMetrics() {
  return getJson("/v1/metrics").then((body) => body.items);
}

export function loadDatasets() {
  return getJson("/v1/datasets").then((body) => body.items);
}

export function loadDevices() {
  return getAllPages("/v1/devices", { limit: 1000 });
}

export function loadLatest() {
  return getJson("/v1/latest").then((body) => body.items);
}

// One device's metric in time buckets over [from, to): server-side means, never raw points;
// for a counter (a running total) the count per bucket (fn=delta), never the total.
export function loadSeries({ device, metric, bucket, from, to, counter = false }) {
  return getJson("/v1/readings/aggregate", {
    device,
    metric,
    bucket,
    fn: counter ? "delta" : "avg",
    from: from.toISOString(),
    to: to.toISOString(),
  });
}

// What each counter of a city counted in [from, to): one series per device.
export function loadCityCounts({ city, metric, from, to }) {
  return getJson("/v1/readings/aggregate", {
    city,
    metric,
    group: "device",
    bucket: "15m",
    fn: "delta",
    from: from.toISOString(),
    to: to.toISOString(),
  }).then((body) => body.series);
}

// What all the counters of a city counted in [from, to), personal ones included: the sum
// of the city-wide series (docs/counters.md). The API withholds it (403 Withheld) while
// the city has fewer personal counters of the metric than it publishes aggregates over.
export function loadCityCount({ city, metric, dataset, from, to }) {
  return getJson("/v1/readings/aggregate", {
    city,
    metric,
    dataset,
    bucket: "1h",
    fn: "delta",
    from: from.toISOString(),
    to: to.toISOString(),
  }).then((body) =>
    body.series.reduce(
      (sum, s) => sum + s.points.reduce((points, point) => points + point.value, 0),
      0,
    ),
  );
}

// The open summaries: per district and zone, only cells of enough sensors show figures.
export function loadWaste() {
  return getJson("/v1/summaries/waste");
}

export function loadParking() {
  return getJson("/v1/summaries/parking");
}
