/**
 * Text detection post-processing for a DB detector (PaddleOCR's PP-OCR det): its probability map →
 * text boxes in the source image's pixels, in reading order. Boxes are axis-aligned: the connected
 * regions of the thresholded map, kept when their mean probability is high enough, grown by DB's
 * unclip distance (the model is trained to predict shrunk regions) and scaled back to the image.
 */

export interface TextBox {
  /** Left, top, right, bottom, in the source image's pixels (right and bottom exclusive). */
  x0: number;
  y0: number;
  x1: number;
  y1: number;
  /** Mean probability of the region's pixels. */
  score: number;
}

export interface TextBoxOptions {
  /** Pixels above this probability belong to text (PaddleOCR's `det_db_thresh`, 0.3). */
  threshold: number;
  /** Regions whose mean probability is lower are dropped (`det_db_box_thresh`, 0.6). */
  boxThreshold: number;
  /** How far a region grows back: area × ratio ÷ perimeter (`det_db_unclip_ratio`, 1.5). */
  unclipRatio: number;
  /** Regions with a side shorter than this, in map pixels, are dropped (3). */
  minSide: number;
  /** The source image's size, when the map is of a resized copy. */
  sourceWidth: number;
  sourceHeight: number;
}

export const DB_DEFAULTS = { threshold: 0.3, boxThreshold: 0.6, unclipRatio: 1.5, minSide: 3 } as const;

/** Boxes of the text regions of a `width` × `height` probability map (row-major), in reading order. */
export function textBoxes(
  map: ArrayLike<number>,
  width: number,
  height: number,
  options: TextBoxOptions,
): TextBox[] {
  if (map.length !== width * height) {
    throw new RangeError(`a probability map of ${map.length} values is not ${width} × ${height}`);
  }
  const label = new Int32Array(width * height).fill(-1);
  const stack: number[] = [];
  const boxes: TextBox[] = [];
  const scaleX = options.sourceWidth / width;
  const scaleY = options.sourceHeight / height;
  for (let start = 0; start < map.length; start++) {
    if (label[start] !== -1 || (map[start] ?? 0) <= options.threshold) continue;
    // One region, 8-connected, by flood fill.
    let minX = width;
    let minY = height;
    let maxX = -1;
    let maxY = -1;
    let sum = 0;
    let count = 0;
    label[start] = boxes.length;
    stack.push(start);
    while (stack.length > 0) {
      const at = stack.pop()!;
      const x = at % width;
      const y = (at - x) / width;
      minX = Math.min(minX, x);
      maxX = Math.max(maxX, x);
      minY = Math.min(minY, y);
      maxY = Math.max(maxY, y);
      sum += map[at] ?? 0;
      count++;
      for (let dy = -1; dy <= 1; dy++) {
        for (let dx = -1; dx <= 1; dx++) {
          const nx = x + dx;
          const ny = y + dy;
          if (nx < 0 || ny < 0 || nx >= width || ny >= height) continue;
          const next = ny * width + nx;
          if (label[next] !== -1 || (map[next] ?? 0) <= options.threshold) continue;
          label[next] = boxes.length;
          stack.push(next);
        }
      }
    }
    const w = maxX - minX + 1;
    const h = maxY - minY + 1;
    const score = sum / count;
    if (Math.min(w, h) < options.minSide || score < options.boxThreshold) continue;
    const grow = (w * h * options.unclipRatio) / (2 * (w + h));
    boxes.push({
      x0: Math.max(0, Math.floor((minX - grow) * scaleX)),
      y0: Math.max(0, Math.floor((minY - grow) * scaleY)),
      x1: Math.min(options.sourceWidth, Math.ceil((maxX + 1 + grow) * scaleX)),
      y1: Math.min(options.sourceHeight, Math.ceil((maxY + 1 + grow) * scaleY)),
      score,
    });
  }
  return readingOrder(boxes);
}

/**
 * Reading order: lines top to bottom, each line's boxes left to right. A box joins the current line
 * when its vertical middle falls within the line's first box.
 */
export function readingOrder<T extends { x0: number; y0: number; y1: number }>(boxes: readonly T[]): T[] {
  const byTop = [...boxes].sort((a, b) => a.y0 - b.y0 || a.x0 - b.x0);
  const ordered: T[] = [];
  let line: T[] = [];
  for (const box of byTop) {
    const head = line[0];
    const middle = (box.y0 + box.y1) / 2;
    if (head !== undefined && (middle < head.y0 || middle >= head.y1)) {
      ordered.push(...line.sort((a, b) => a.x0 - b.x0));
      line = [];
    }
    line.push(box);
  }
  ordered.push(...line.sort((a, b) => a.x0 - b.x0));
  return ordered;
}
