// Colour scales for the map: fixed bands where a metric has well-known ones and they apply
// to where the sensor measures (indoor or outdoor air), otherwise five equal classes over
// the values shown.

export const SILENT_COLOUR = "#9e9e9e";
// "No value yet" is a hollow marker, white with a dashed outline: no class colour is white.
export const NO_VALUE_COLOUR = "#ffffff";

const GOOD_TO_BAD = ["#1a9850", "#91cf60", "#fee08b", "#fc8d59", "#d73027"];
const COLD_TO_HOT = ["#313695", "#4575b4", "#91bfdb", "#fee090", "#fc8d59", "#d73027"];
// Relative classes: a sequential palette whose lightest colour is still far from white.
const LOW_TO_HIGH = ["#9ecae1", "#6baed6", "#4292c6", "#2171b5", "#08306b"];

// Upper bounds of each class but the last, in the metric's unit, and the placements the
// bands are meant for. PM: WHO's 2021 guideline levels for ambient (outdoor) air (PM2.5
// 15 µg/m³, PM10 45 µg/m³ over 24 h) and their interim targets; CO2 and TVOC: the
// indoor-air bands of the Umweltbundesamt (below 1000 ppm harmless, above 2000 ppm
// unacceptable); temperature: comfort bands for both.
const FIXED = {
  pm2_5: { breaks: [5, 15, 25, 50], colours: GOOD_TO_BAD, placements: ["outdoor"] },
  pm1_0: { breaks: [5, 15, 25, 50], colours: GOOD_TO_BAD, placements: ["outdoor"] },
  pm10: { breaks: [15, 45, 75, 100], colours: GOOD_TO_BAD, placements: ["outdoor"] },
  co2: { breaks: [800, 1000, 1400, 2000], colours: GOOD_TO_BAD, placements: ["indoor"] },
  tvoc: { breaks: [65, 220, 660, 2200], colours: GOOD_TO_BAD, placements: ["indoor"] },
  temperature: {
    breaks: [0, 10, 18, 24, 30],
    colours: COLD_TO_HOT,
    placements: ["indoor", "outdoor"],
  },
  external_temperature: {
    breaks: [0, 10, 18, 24, 30],
    colours: COLD_TO_HOT,
    placements: ["indoor", "outdoor"],
  },
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

// Whether a metric's fixed bands apply to a sensor of this placement (null: not known).
export function bandsApply(metric, placement) {
  const fixed = FIXED[metric];
  return Boolean(fixed && placement && fixed.placements.includes(placement));
}

// The placements a metric's bands are meant for; none when it has no bands.
export function bandPlacements(metric) {
  return FIXED[metric]?.placements ?? [];
}

// A scale: { kind: "states", states } or { kind: "bands" | "relative", breaks, colours },
// with colourOf(value) -> colour. `banded` asks for the fixed bands, else relative classes
// over `values`.
export function scaleFor(metric, values, { banded = true } = {}) {
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
  let kind = "bands";
  let { breaks, colours } = (banded && FIXED[metric]) || {};
  if (!breaks) {
    kind = "relative";
    colours = LOW_TO_HIGH;
    const finite = values.filter(Number.isFinite);
    const low = finite.length ? Math.min(...finite) : 0;
    const high = finite.length ? Math.max(...finite) : 1;
    const step = high > low ? niceStep(high - low) : 1;
    const start = Math.floor(low / step) * step;
    breaks = [1, 2, 3, 4].map((i) => start + i * step);
  }
  return {
    kind,
    breaks,
    colours,
    colourOf(value) {
      const index = breaks.findIndex((b) => value < b);
      return colours[index === -1 ? breaks.length : index];
    },
  };
}
