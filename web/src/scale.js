// Colour scales for the map: fixed classes where a metric has well-known bands,
// otherwise five equal classes over the values shown.

export const SILENT_COLOUR = "#9e9e9e";
export const NO_VALUE_COLOUR = "#ffffff";

const GOOD_TO_BAD = ["#1a9850", "#91cf60", "#fee08b", "#fc8d59", "#d73027"];
const COLD_TO_HOT = ["#313695", "#4575b4", "#91bfdb", "#fee090", "#fc8d59", "#d73027"];
const LOW_TO_HIGH = ["#edf8fb", "#b3cde3", "#8c96c6", "#8856a7", "#810f7c"];

// Upper bounds of each class but the last, in the metric's unit. PM: WHO's 2021 guideline
// levels (PM2.5 15 µg/m³, PM10 45 µg/m³ over 24 h) and their interim targets; CO2: the
// usual indoor-air bands (Umweltbundesamt: below 1000 ppm harmless, above 2000 ppm
// unacceptable).
const FIXED = {
  pm2_5: { breaks: [5, 15, 25, 50], colours: GOOD_TO_BAD },
  pm1_0: { breaks: [5, 15, 25, 50], colours: GOOD_TO_BAD },
  pm10: { breaks: [15, 45, 75, 100], colours: GOOD_TO_BAD },
  co2: { breaks: [800, 1000, 1400, 2000], colours: GOOD_TO_BAD },
  tvoc: { breaks: [65, 220, 660, 2200], colours: GOOD_TO_BAD },
  temperature: { breaks: [0, 10, 18, 24, 30], colours: COLD_TO_HOT },
  external_temperature: { breaks: [0, 10, 18, 24, 30], colours: COLD_TO_HOT },
};

// Occupancy is a state: 0 free, 1 occupied.
const STATES = {
  occupancy: [
    { value: 0, colour: "#1a9850", label: "legend.free" },
    { value: 1, colour: "#d73027", label: "legend.occupied" },
  ],
};

function niceStep(span) {
  const raw = span / 5;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  for (const factor of [1, 2, 2.5, 5, 10]) {
    if (raw <= factor * magnitude) return factor * magnitude;
  }
  return 10 * magnitude;
}

// A scale: { kind: "classes", breaks, colours } or { kind: "states", states }, with
// colourOf(value) -> colour.
export function scaleFor(metric, values) {
  if (STATES[metric]) {
    const states = STATES[metric];
    return {
      kind: "states",
      states,
      colourOf(value) {
        const state = states.find((s) => s.value === Math.round(value));
        return state ? state.colour : NO_VALUE_COLOUR;
      },
    };
  }
  let { breaks, colours } = FIXED[metric] ?? {};
  if (!breaks) {
    colours = LOW_TO_HIGH;
    const finite = values.filter(Number.isFinite);
    const low = finite.length ? Math.min(...finite) : 0;
    const high = finite.length ? Math.max(...finite) : 1;
    const step = high > low ? niceStep(high - low) : 1;
    const start = Math.floor(low / step) * step;
    breaks = [1, 2, 3, 4].map((i) => start + i * step);
  }
  return {
    kind: "classes",
    breaks,
    colours,
    colourOf(value) {
      const index = breaks.findIndex((b) => value < b);
      return colours[index === -1 ? breaks.length : index];
    },
  };
}
