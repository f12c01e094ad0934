import { describe, expect, it } from 'vitest';
import { logTicks, niceStep, renderLinePlot } from './svg.ts';

describe('axis helpers', () => {
  it('rounds steps up to 1, 2 or 5 × 10^k', () => {
    expect(niceStep(0.7)).toBe(1);
    expect(niceStep(130)).toBe(200);
    expect(niceStep(420)).toBe(500);
    expect(niceStep(600)).toBe(1000);
    expect(niceStep(0)).toBe(1);
  });

  it('puts log ticks at 1, 2, 5 of each decade in range', () => {
    expect(logTicks(1, 100)).toEqual([1, 2, 5, 10, 20, 50, 100]);
    expect(logTicks(0.1, 1)).toEqual([0.1, 0.2, 0.5, 1]);
  });
});

describe('renderLinePlot', () => {
  const svg = renderLinePlot({
    title: 'latency <vs> load',
    xLabel: 'throughput',
    yLabel: 'ms',
    series: [
      {
        label: 'a p50',
        color: '#111111',
        dashed: false,
        points: [
          { x: 100, y: 2 },
          { x: 50, y: 1 },
        ],
      },
      {
        label: 'a p99',
        color: '#111111',
        dashed: true,
        points: [
          { x: 50, y: 3 },
          { x: 100, y: 40 },
        ],
      },
      { label: 'b p50', color: '#222222', dashed: false, points: [] },
    ],
  });

  it('draws one line per series with points, a marker per point and a legend entry per series', () => {
    expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
    expect(svg.trimEnd().endsWith('</svg>')).toBe(true);
    expect(svg.match(/<polyline /g)).toHaveLength(2);
    expect(svg.match(/<circle /g)).toHaveLength(4);
    expect(svg.match(/stroke-dasharray/g)).toHaveLength(2);
    for (const label of ['a p50', 'a p99', 'b p50']) expect(svg).toContain(`>${label}</text>`);
  });

  it('escapes text', () => {
    expect(svg).toContain('latency &lt;vs&gt; load');
  });

  it('draws a labelled level across the plot, and takes it into the y range', () => {
    const withLevel = renderLinePlot({
      title: 't',
      xLabel: 'x',
      yLabel: 'y',
      series: [{ label: 's', color: '#111111', dashed: false, points: [{ x: 1, y: 2 }] }],
      levels: [{ y: 300, label: 'objective <300 ms>', color: '#2ca02c' }],
    });
    expect(withLevel).toContain('stroke="#2ca02c" stroke-width="1.5" stroke-dasharray="2 3"');
    expect(withLevel).toContain('>objective &lt;300 ms&gt;</text>');
    // The y axis reaches 1,000 to hold the level at 300 (without it, 10 is its top).
    expect(withLevel).toContain('>1,000</text>');
  });
});
