/**
 * Text images for OCR tests, rendered here rather than committed: black lines on white, drawn by
 * sharp from an SVG (librsvg, with fontconfig finding the font). The font is DejaVu Sans from
 * Debian's fonts-dejavu-core, which .ci/run installs; named explicitly so that no fallback font
 * changes what the tests read.
 */
import type { DecodedImage } from '@inferq/processors';
import sharp from 'sharp';

export interface RenderTextOptions {
  /** Pixels per em (32: large enough for a 48-pixel-high recogniser input to read reliably). */
  fontSize?: number;
  /** Baseline to baseline, in ems (2: a blank band between lines, so their boxes stay apart). */
  lineSpacing?: number;
  /** White around the text, in pixels (one em). */
  margin?: number;
}

const escapeXml = (text: string) => text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/** A PNG of `lines`, one below the other, left-aligned. */
export async function renderText(lines: readonly string[], options: RenderTextOptions = {}): Promise<Buffer> {
  const { fontSize = 32, lineSpacing = 2, margin = fontSize } = options;
  const pitch = Math.round(fontSize * lineSpacing);
  // No DejaVu Sans glyph a test uses advances more than one em, so this width always holds a line.
  const width = 2 * margin + fontSize * Math.max(1, ...lines.map((line) => line.length));
  const height = 2 * margin + fontSize + pitch * (lines.length - 1);
  const texts = lines.map((line, i) => {
    // Each baseline 0.8 em below its line's top: the rest of the pitch leaves room for descenders.
    const baseline = margin + Math.round(fontSize * 0.8) + i * pitch;
    return `<text x="${margin}" y="${baseline}" xml:space="preserve">${escapeXml(line)}</text>`;
  });
  const svg = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}">`,
    '<rect width="100%" height="100%" fill="#ffffff"/>',
    `<g font-family="DejaVu Sans" font-size="${fontSize}" fill="#000000">`,
    ...texts,
    '</g></svg>',
  ].join('\n');
  return sharp(Buffer.from(svg)).flatten({ background: '#ffffff' }).png().toBuffer();
}

/**
 * The ink of each rendered line: the bounding box (right and bottom exclusive) of every pixel that is
 * not pure white, one box per run of rows with ink. Where the text was drawn, found from the pixels
 * rather than predicted from font metrics.
 */
export function inkLines(image: DecodedImage): { x0: number; y0: number; x1: number; y1: number }[] {
  const lines: { x0: number; y0: number; x1: number; y1: number }[] = [];
  let current: { x0: number; y0: number; x1: number; y1: number } | undefined;
  for (let y = 0; y < image.height; y++) {
    let x0 = image.width;
    let x1 = 0;
    for (let x = 0; x < image.width; x++) {
      const at = (y * image.width + x) * 3;
      if (image.data[at] !== 255 || image.data[at + 1] !== 255 || image.data[at + 2] !== 255) {
        x0 = Math.min(x0, x);
        x1 = x + 1;
      }
    }
    if (x1 === 0) {
      if (current !== undefined) lines.push(current);
      current = undefined;
    } else if (current === undefined) {
      current = { x0, y0: y, x1, y1: y + 1 };
    } else {
      current = { x0: Math.min(current.x0, x0), y0: current.y0, x1: Math.max(current.x1, x1), y1: y + 1 };
    }
  }
  if (current !== undefined) lines.push(current);
  return lines;
}
