import { describe, expect, it } from 'vitest';
import { DB_DEFAULTS, readingOrder, textBoxes } from './text-boxes.ts';

/** A `width` × `height` map of zeros with rectangles [x0, y0, x1, y1) set to `p`. */
function map(
  width: number,
  height: number,
  ...rects: [number, number, number, number, number][]
): Float32Array {
  const out = new Float32Array(width * height);
  for (const [x0, y0, x1, y1, p] of rects) {
    for (let y = y0; y < y1; y++) for (let x = x0; x < x1; x++) out[y * width + x] = p;
  }
  return out;
}

const options = { ...DB_DEFAULTS, sourceWidth: 40, sourceHeight: 20 };

describe('textBoxes', () => {
  it('finds each confident region, grows it by the unclip distance and scales it to the source', () => {
    // 10 × 4 region: area 40 × 1.5 / perimeter 28 ≈ 2.14 map pixels of growth on each side.
    const boxes = textBoxes(map(20, 10, [4, 3, 14, 7, 0.9]), 20, 10, options);
    expect(boxes).toHaveLength(1);
    const grow = (40 * 1.5) / 28;
    expect(boxes[0]).toEqual({
      x0: Math.floor((4 - grow) * 2),
      y0: Math.floor((3 - grow) * 2),
      x1: Math.ceil((14 + grow) * 2),
      y1: Math.ceil((7 + grow) * 2),
      score: expect.closeTo(0.9, 6),
    });
  });

  it('drops regions under the box threshold or thinner than minSide, and clamps to the image', () => {
    const boxes = textBoxes(
      map(20, 10, [0, 0, 6, 4, 0.95], [10, 0, 16, 4, 0.5], [10, 7, 18, 9, 0.9]),
      20,
      10,
      options,
    );
    // The second is too faint (0.5 < 0.6), the third only 2 rows high.
    expect(boxes).toHaveLength(1);
    expect(boxes[0]).toMatchObject({ x0: 0, y0: 0 });
  });

  it('refuses a map whose size does not match', () => {
    expect(() => textBoxes(new Float32Array(5), 2, 2, options)).toThrow(/not 2 × 2/);
  });
});

describe('readingOrder', () => {
  it('orders lines top to bottom and each line left to right', () => {
    const box = (name: string, x0: number, y0: number, y1: number) => ({ name, x0, y0, y1 });
    const ordered = readingOrder([
      box('second line, right', 50, 41, 60),
      box('first line, right', 60, 12, 30),
      box('second line, left', 5, 40, 58),
      box('first line, left', 4, 10, 28),
    ]);
    expect(ordered.map((b) => b.name)).toEqual([
      'first line, left',
      'first line, right',
      'second line, left',
      'second line, right',
    ]);
  });
});
