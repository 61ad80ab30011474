// Detection boxes for the overlay.
//
// The package returns `boxes` parsed by pinhole-models' boxes.rs; `normaliseBox` accepts that
// shape (and the raw <locYYYY> grid) and gives { xMin, yMin, xMax, yMax, label } in [0, 1].
// `parseBoxes` is only a fallback for results that carry no `boxes` (e.g. a stream cut short):
// PaliGemma writes `<locY0><locX0><locY1><locX1> label ; …` with coordinates on a 0..1023 grid
// over the whole image (y first).

const LOC = /<loc(\d{4})>/y;

export function parseBoxes(text) {
  const out = [];
  let i = 0;
  while (i < text.length) {
    const start = text.indexOf('<loc', i);
    if (start < 0) break;
    const locs = [];
    let j = start;
    while (locs.length < 4) {
      while (text[j] === ' ') j++;
      LOC.lastIndex = j;
      const m = LOC.exec(text);
      if (!m || Number(m[1]) > 1023) break;
      locs.push(Number(m[1]) / 1024);
      j = LOC.lastIndex;
    }
    if (locs.length < 4) {
      i = start + 1;
      continue;
    }
    const rest = text.slice(j);
    const semi = rest.indexOf(';');
    const next = rest.indexOf('<loc');
    const cut = Math.min(semi < 0 ? rest.length : semi, next < 0 ? rest.length : next);
    out.push({ yMin: locs[0], xMin: locs[1], yMax: locs[2], xMax: locs[3], label: rest.slice(0, cut).trim() });
    i = j + cut + (rest[cut] === ';' ? 1 : 0);
  }
  return out;
}

/** Any box shape the package may give (snake_case, camelCase, arrays, 0..1023 grid) to one form. */
export function normaliseBox(b) {
  if (!b) return null;
  let yMin, xMin, yMax, xMax;
  if (Array.isArray(b.box || b)) {
    [yMin, xMin, yMax, xMax] = b.box || b; // PaliGemma order: y0, x0, y1, x1
  } else {
    yMin = b.yMin ?? b.y_min ?? b.y0;
    xMin = b.xMin ?? b.x_min ?? b.x0;
    yMax = b.yMax ?? b.y_max ?? b.y1;
    xMax = b.xMax ?? b.x_max ?? b.x1;
  }
  const v = [yMin, xMin, yMax, xMax].map(Number);
  if (v.some((n) => !Number.isFinite(n))) return null;
  // Values above 1 are on the 1024 grid.
  const scale = v.some((n) => n > 1) ? 1 / 1024 : 1;
  const [y0, x0, y1, x1] = v.map((n) => Math.min(1, Math.max(0, n * scale)));
  return { yMin: Math.min(y0, y1), xMin: Math.min(x0, x1), yMax: Math.max(y0, y1), xMax: Math.max(x0, x1), label: String(b.label ?? '') };
}
