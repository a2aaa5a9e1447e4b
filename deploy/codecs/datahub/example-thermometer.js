// datahub's own example codec, in the style of The Things Network device repository.
// Frame on fPort 1, big-endian: temperature int16 in 0.1 °C, humidity uint8 in 0.5 %RH,
// battery uint16 in mV.
function decodeUplink(input) {
  const { bytes, fPort } = input;
  if (fPort !== 1) {
    return { errors: [`unknown fPort ${fPort}`] };
  }
  if (bytes.length !== 5) {
    return { errors: [`expected 5 bytes, got ${bytes.length}`] };
  }
  const view = new DataView(Uint8Array.from(bytes).buffer);
  const batteryVolts = view.getUint16(3) / 1000;
  const warnings = batteryVolts < 2.6 ? [`battery low: ${batteryVolts} V`] : [];
  return {
    data: {
      temperature: view.getInt16(0) / 10,
      humidity: view.getUint8(2) / 2,
      battery: batteryVolts,
    },
    warnings,
  };
}
