// A small reader for previews of uncompressed DICOM CT slices, in the browser, before upload.
// Reads only the pixel geometry, the rescale to Hounsfield units and the orientation; compressed
// or unusual files get no preview (the server reads them all).
"use strict";

const IMPLICIT_LE = "1.2.840.10008.1.2";
const EXPLICIT_LE = "1.2.840.10008.1.2.1";
const LONG_VRS = new Set(["OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"]);
const WANTED = {
  "00020010": "transferSyntax", "00280010": "rows", "00280011": "columns", "00280100": "bitsAllocated",
  "00280103": "pixelRepresentation", "00281052": "intercept", "00281053": "slope", "00200037": "orientation",
  "00080060": "modality",
};

const hex = (n) => n.toString(16).padStart(4, "0");
const text = (view, offset, length) =>
  new TextDecoder("latin1").decode(new Uint8Array(view.buffer, view.byteOffset + offset, length)).replace(/[\0 ]+$/, "");

// Skip an item or sequence of undefined length: find its delimiter, nesting included.
function skipUndefined(view, offset) {
  let depth = 1;
  while (offset + 8 <= view.byteLength && depth > 0) {
    const group = view.getUint16(offset, true);
    const element = view.getUint16(offset + 2, true);
    const length = view.getUint32(offset + 4, true);
    offset += 8;
    if (group === 0xfffe && (element === 0xe0dd || element === 0xe00d)) depth -= 1;
    else if (group === 0xfffe && element === 0xe000) { if (length === 0xffffffff) depth += 1; else offset += length; }
    else {
      // an element inside an item: explicit VR is not known here, so take the implicit layout
      if (length === 0xffffffff) depth += 1; else offset += length;
    }
  }
  return offset;
}

export function parseDicom(buffer) {
  const view = new DataView(buffer);
  if (buffer.byteLength < 132 || text(view, 128, 4) !== "DICM") return null;
  const found = {};
  let offset = 132;
  let explicit = true;
  while (offset + 8 <= view.byteLength) {
    const group = view.getUint16(offset, true);
    const element = view.getUint16(offset + 2, true);
    const tag = hex(group) + hex(element);
    if (group !== 0x0002 && found.transferSyntax !== undefined && explicit && found.transferSyntax === IMPLICIT_LE) explicit = false;
    let vr = null;
    let length;
    let header;
    if (explicit || group === 0x0002) {
      vr = text(view, offset + 4, 2);
      if (LONG_VRS.has(vr)) { length = view.getUint32(offset + 8, true); header = 12; }
      else { length = view.getUint16(offset + 6, true); header = 8; }
    } else {
      length = view.getUint32(offset + 4, true);
      header = 8;
    }
    offset += header;
    if (tag === "7fe00010") {
      if (length === 0xffffffff) return null; // encapsulated (compressed) pixel data
      found.pixelOffset = offset;
      found.pixelLength = length;
      break;
    }
    if (length === 0xffffffff) { offset = skipUndefined(view, offset); continue; }
    const name = WANTED[tag];
    if (name) {
      if (["rows", "columns", "bitsAllocated", "pixelRepresentation"].includes(name)) found[name] = view.getUint16(offset, true);
      else found[name] = text(view, offset, length);
    }
    offset += length;
  }
  if (![EXPLICIT_LE, IMPLICIT_LE].includes(found.transferSyntax) || found.bitsAllocated !== 16 || found.pixelOffset === undefined) return null;
  const count = found.rows * found.columns;
  if (!count || found.pixelLength < count * 2) return null;
  const stored = found.pixelRepresentation === 1
    ? new Int16Array(buffer.slice(found.pixelOffset, found.pixelOffset + count * 2))
    : new Uint16Array(buffer.slice(found.pixelOffset, found.pixelOffset + count * 2));
  const orientation = (found.orientation || "1\\0\\0\\0\\1\\0").split("\\").map(Number);
  return {
    rows: found.rows, columns: found.columns, stored,
    slope: Number(found.slope || 1), intercept: Number(found.intercept || 0),
    flipColumns: orientation[0] < 0, flipRows: orientation[4] < 0, modality: found.modality || "",
  };
}

// Draw a parsed slice as the model sees it (HU clipped to 0..255) on a canvas, in the radiological view.
export function drawDicom(canvas, slice, center = 127.5, width = 255) {
  const scratch = document.createElement("canvas");
  scratch.width = slice.columns;
  scratch.height = slice.rows;
  const context = scratch.getContext("2d");
  const image = context.createImageData(slice.columns, slice.rows);
  const low = center - width / 2;
  for (let r = 0; r < slice.rows; r += 1) {
    for (let c = 0; c < slice.columns; c += 1) {
      const source = (slice.flipRows ? slice.rows - 1 - r : r) * slice.columns + (slice.flipColumns ? slice.columns - 1 - c : c);
      const hu = slice.stored[source] * slice.slope + slice.intercept;
      const grey = Math.max(0, Math.min(255, ((hu - low) / width) * 255));
      const target = (r * slice.columns + c) * 4;
      image.data[target] = image.data[target + 1] = image.data[target + 2] = grey;
      image.data[target + 3] = 255;
    }
  }
  context.putImageData(image, 0, 0);
  canvas.getContext("2d").drawImage(scratch, 0, 0, canvas.width, canvas.height);
}
