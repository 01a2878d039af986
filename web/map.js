// The local risk map (ocr_core/map_server.py serves it): the published PMTiles and raster
// pyramid of one namespace, drawn with MapLibre GL JS and the PMTiles decoder from npm.
// The page's hash: map=zoom/lat/lon (MapLibre), layer=regions|buildings|centroids|raster,
// year=2011|2047. The map is window.ocrMap; window.ocrReady is true once the first view is set.
"use strict";

const BUILDING_ZOOM = 12; // buildings from here on, their centroids below
const FOCUS_ZOOM = 15; // where layer=buildings takes you (see focusOnBuildings)
// Zoom bands of the regional fills: counties, then tracts, then blocks (if published).
const REGION_ZOOMS = { counties: [0, 8], tracts: [8, 10], blocks: [10, BUILDING_ZOOM] };
const TRANSPARENT = "rgba(0, 0, 0, 0)";
const TILESET_OF_LAYER = {
  counties: "regions", tracts: "regions", blocks: "regions", states: "regions",
  nation: "regions", buildings: "buildings", centroids: "building_centroids",
};
const LAYER_TITLES = {
  counties: "County", tracts: "Tract", blocks: "Block", states: "State", nation: "Nation",
  buildings: "Building", centroids: "Building centroid",
};

const params = new URLSearchParams(location.hash.slice(1));
let config = null;
let year = params.get("year") === "2047" ? "2047" : "2011";

function keyOf(tileset, name) {
  const entry = Object.entries(config.properties[tileset]).find(([, n]) => n === name);
  return entry[0];
}

// A feature's properties under their real names (the tiles carry numeric keys; arrays come
// as JSON strings).
function decode(layer, properties) {
  const names = config.properties[TILESET_OF_LAYER[layer]];
  const out = {};
  for (const [key, value] of Object.entries(properties)) {
    const isArray = typeof value === "string" && value.startsWith("[");
    out[names[key] ?? key] = isArray ? JSON.parse(value) : value;
  }
  return out;
}

// Colour by risk score: 0 exactly, then (a, b] over the schema's boundaries, compared as
// float32 (the tiles' RPS values are float32); no value, or above the last bin: transparent.
function riskColour(key) {
  const v = ["to-number", ["get", key]];
  const colours = config.risk_colours;
  const expr = ["case", ["!", ["has", key]], TRANSPARENT, ["==", v, 0], colours[0]];
  config.risk_score_boundaries.forEach((b, i) => expr.push(["<=", v, Math.fround(b)], colours[i + 1]));
  expr.push(TRANSPARENT);
  return expr;
}

function rasterTiles() {
  return [location.origin + config.pyramid.tiles.replace("{variable}", `rps_${year}`)];
}

function buildStyle(vectorLayers) {
  const sources = {};
  const layers = [{ id: "background", type: "background", paint: { "background-color": "#f3f1ec" } }];
  const ts = config.tilesets;
  for (const [name, url] of Object.entries(ts)) {
    const id = name === "building_centroids" ? "centroids" : name;
    sources[id] = { type: "vector", url: `pmtiles://${location.origin}${url}` };
  }
  if (config.pyramid) {
    const p = config.pyramid;
    sources.raster = {
      type: "raster", tiles: rasterTiles(), tileSize: 256, bounds: p.bounds, minzoom: 0,
      maxzoom: p.maxzoom,
    };
  }
  const regionLayers = new Set(vectorLayers.regions || []);
  const meanKey = keyOf("regions", `rps_${year}_mean`);
  for (const [level, [minzoom, maxzoom]] of Object.entries(REGION_ZOOMS)) {
    if (!regionLayers.has(level)) continue;
    const top = level === "tracts" && !regionLayers.has("blocks") ? BUILDING_ZOOM : maxzoom;
    layers.push({
      id: level, type: "fill", source: "regions", "source-layer": level, minzoom, maxzoom: top,
      metadata: { group: "regions" },
      paint: { "fill-color": riskColour(meanKey), "fill-opacity": 0.75 },
    });
  }
  if (sources.raster) {
    layers.push({
      id: "raster", type: "raster", source: "raster", layout: { visibility: "none" },
      paint: { "raster-opacity": 0.85, "raster-resampling": "nearest" },
    });
  }
  const outlines = [
    ["blocks", 10, "#8888", 0.3], ["tracts", 8, "#666a", 0.5], ["counties", 0, "#444", 0.9],
    ["states", 0, "#222", 1.6], ["nation", 0, "#000", 2.2],
  ];
  for (const [level, minzoom, color, width] of outlines) {
    if (!regionLayers.has(level)) continue;
    const fillable = level in REGION_ZOOMS;
    layers.push({
      id: fillable ? `${level}-outline` : level, type: "line", source: "regions",
      "source-layer": level, minzoom, paint: { "line-color": color, "line-width": width },
    });
  }
  if (ts.building_centroids) {
    layers.push({
      id: "centroids", type: "circle", source: "centroids", "source-layer": "risk",
      maxzoom: BUILDING_ZOOM, metadata: { group: "buildings" },
      paint: {
        "circle-color": riskColour(keyOf("building_centroids", `rps_${year}`)),
        "circle-radius": ["interpolate", ["linear"], ["zoom"], 6, 1.2, BUILDING_ZOOM, 3.5],
        "circle-stroke-color": "#0006", "circle-stroke-width": 0.3,
      },
    });
  }
  if (ts.buildings) {
    layers.push({
      id: "buildings", type: "fill", source: "buildings", "source-layer": "risk",
      minzoom: BUILDING_ZOOM, metadata: { group: "buildings" },
      paint: {
        "fill-color": riskColour(keyOf("buildings", `rps_${year}`)),
        "fill-outline-color": "#333",
      },
    });
  }
  return { version: 8, sources, layers };
}

function setYear(map, value) {
  year = value;
  const paint = {
    counties: ["fill-color", keyOf("regions", `rps_${year}_mean`)],
    tracts: ["fill-color", keyOf("regions", `rps_${year}_mean`)],
    blocks: ["fill-color", keyOf("regions", `rps_${year}_mean`)],
    centroids: ["circle-color", config.tilesets.building_centroids && keyOf("building_centroids", `rps_${year}`)],
    buildings: ["fill-color", keyOf("buildings", `rps_${year}`)],
  };
  for (const [id, [prop, key]] of Object.entries(paint)) {
    if (map.getLayer(id)) map.setPaintProperty(id, prop, riskColour(key));
  }
  if (map.getSource("raster")) map.getSource("raster").setTiles(rasterTiles());
  setHashParam("year", year);
}

function setGroupVisible(map, group, visible) {
  for (const layer of map.getStyle().layers) {
    const ids = group === "raster" ? layer.id === "raster" : layer.metadata?.group === group;
    if (ids) map.setLayoutProperty(layer.id, "visibility", visible ? "visible" : "none");
  }
}

function setHashParam(name, value) {
  const p = new URLSearchParams(location.hash.slice(1));
  p.set(name, value);
  history.replaceState(null, "", `#${p.toString().replaceAll("%2F", "/")}`);
}

function legend() {
  const box = document.getElementById("legend");
  config.risk_score_labels.forEach((label, score) => {
    const row = document.createElement("div");
    row.className = "row";
    row.innerHTML = `<span class="swatch" style="background:${config.risk_colours[score]}"></span>` +
      `<span>${score} — ${label}</span>`;
    box.appendChild(row);
  });
}

function escapeHtml(text) {
  const span = document.createElement("span");
  span.textContent = String(text);
  return span.innerHTML;
}

function format(value) {
  if (typeof value === "number" && !Number.isInteger(value)) return value.toPrecision(5);
  if (Array.isArray(value)) return value.map(format).join(", ");
  return escapeHtml(value);
}

function histogram(name, counts) {
  const top = Math.max(1, ...counts);
  const bars = counts.map((c, score) =>
    `<div class="bar" title="score ${score} ${config.risk_score_labels[score]}: ${c}" ` +
    `style="height:${(100 * c) / top}%;background:${config.risk_colours[score]}"></div>`).join("");
  const ticks = counts.map((_, score) => `<span>${score}</span>`).join("");
  return `<div class="hist"><div class="name">${name}</div><div class="bars">${bars}</div>` +
    `<div class="ticks">${ticks}</div></div>`;
}

function popupHtml(feature) {
  const props = decode(feature.layer.id, feature.properties);
  const rows = [];
  const hists = [];
  if (feature.id !== undefined) rows.push(["id", feature.id]);
  for (const [name, value] of Object.entries(props)) {
    if (name.startsWith("risk_score_") && Array.isArray(value)) hists.push(histogram(name, value));
    else rows.push([name, value]);
  }
  const title = LAYER_TITLES[feature.layer.id] + (props.NAME ? ` — ${escapeHtml(props.NAME)}` : "");
  const table = rows.map(([n, v]) => `<tr><td class="name">${n}</td><td>${format(v)}</td></tr>`).join("");
  return `<div class="popup"><h2>${title}</h2><table>${table}</table>${hists.join("")}</div>`;
}

function clickable(map) {
  return ["buildings", "centroids", "blocks", "tracts", "counties", "states", "nation"].filter(
    (id) => map.getLayer(id) && map.getLayoutProperty(id, "visibility") !== "none");
}

function status(map) {
  const z = map.getZoom();
  const shown = z >= BUILDING_ZOOM ? "buildings" : `regions${config.tilesets.building_centroids ? " and building centroids" : ""}`;
  document.getElementById("status").textContent = `zoom ${z.toFixed(1)}: ${shown}, ${year}`;
}

function problem(message) {
  const line = document.createElement("div");
  line.className = "problem";
  line.textContent = message;
  document.getElementById("status").after(line);
}

// Where to look first: the building data's bounds, else the pyramid's, else the regions'.
function dataBounds(headers) {
  const h = headers.buildings || headers.building_centroids;
  if (h) return [h.minLon, h.minLat, h.maxLon, h.maxLat];
  if (config.pyramid) return config.pyramid.bounds;
  if (headers.regions) return [headers.regions.minLon, headers.regions.minLat, headers.regions.maxLon, headers.regions.maxLat];
  return [-125, 24, -66, 50];
}

function whenIdle(map) {
  return new Promise((resolve) => {
    if (map.loaded() && map.areTilesLoaded()) resolve();
    else map.once("idle", () => resolve());
  });
}

// layer=buildings: a building zoom where the buildings are densest (the 0.01° cell holding the
// most centroids), else the middle of the view.
async function focusOnBuildings(map) {
  await whenIdle(map);
  const cells = new Map();
  if (map.getSource("centroids")) {
    for (const f of map.querySourceFeatures("centroids", { sourceLayer: "risk" })) {
      const [lon, lat] = f.geometry.coordinates;
      const key = `${Math.floor(lon / 0.01)},${Math.floor(lat / 0.01)}`;
      const cell = cells.get(key) || { n: 0, lon: 0, lat: 0 };
      cells.set(key, { n: cell.n + 1, lon: cell.lon + lon, lat: cell.lat + lat });
    }
  }
  const best = [...cells.values()].sort((a, b) => b.n - a.n)[0];
  const center = best ? [best.lon / best.n, best.lat / best.n] : map.getCenter();
  map.jumpTo({ center, zoom: FOCUS_ZOOM });
}

async function main() {
  config = await (await fetch("/config.json")).json();
  document.getElementById("source").textContent = `${config.root} · ${config.namespace}`;
  legend();
  const protocol = new pmtiles.Protocol();
  maplibregl.addProtocol("pmtiles", protocol.tile);
  const headers = {};
  const vectorLayers = {};
  for (const [name, url] of Object.entries(config.tilesets)) {
    const archive = new pmtiles.PMTiles(location.origin + url);
    protocol.add(archive);
    headers[name] = await archive.getHeader();
    vectorLayers[name] = ((await archive.getMetadata()).vector_layers || []).map((l) => l.id);
  }
  const missing = ["regions", "buildings", "building_centroids"].filter((n) => !config.tilesets[n]);
  if (missing.length) problem(`not published: ${missing.join(", ")} (run ./dev demo)`);
  if (!config.pyramid) problem("no pyramid published: the raster layer is off");
  document.querySelector(`#year input[value="${year}"]`).checked = true;

  const map = new maplibregl.Map({
    container: "map", style: buildStyle(vectorLayers), hash: "map", maxZoom: 19,
    bounds: params.has("map") ? undefined : dataBounds(headers),
    fitBoundsOptions: { padding: 40 }, attributionControl: false,
  });
  window.ocrMap = map;
  window.ocrConfig = config;
  window.ocrDecode = decode;
  map.addControl(new maplibregl.NavigationControl(), "top-right");
  map.addControl(new maplibregl.ScaleControl(), "bottom-right");
  map.on("error", (e) => console.error("map error:", e.error?.message || e));
  map.on("moveend", () => status(map));
  map.on("click", (e) => {
    const [feature] = map.queryRenderedFeatures(e.point, { layers: clickable(map) });
    if (feature) new maplibregl.Popup({ maxWidth: "340px" }).setLngLat(e.lngLat).setHTML(popupHtml(feature)).addTo(map);
  });
  for (const id of clickable(map)) {
    map.on("mouseenter", id, () => { map.getCanvas().style.cursor = "pointer"; });
    map.on("mouseleave", id, () => { map.getCanvas().style.cursor = ""; });
  }
  await new Promise((resolve) => map.once("load", resolve));

  document.querySelectorAll('#year input').forEach((input) =>
    input.addEventListener("change", () => { setYear(map, input.value); status(map); }));
  const toggles = { "show-regions": "regions", "show-buildings": "buildings", "show-raster": "raster" };
  for (const [id, group] of Object.entries(toggles)) {
    const box = document.getElementById(id);
    box.addEventListener("change", () => setGroupVisible(map, group, box.checked));
  }
  const layer = params.get("layer");
  const raster = document.getElementById("show-raster");
  raster.disabled = !config.pyramid;
  if (layer === "raster" && config.pyramid) {
    raster.checked = true;
    setGroupVisible(map, "raster", true);
    if (!params.has("map")) map.fitBounds(config.pyramid.bounds, { padding: 40, animate: false });
  }
  if (layer === "buildings" && !params.has("map")) await focusOnBuildings(map);
  status(map);
  window.ocrReady = true;
}

main().catch((err) => {
  console.error("the map failed to start:", err);
  problem(`the map failed to start: ${err.message || err}`);
});
