import { describe, expect, it } from 'vitest';
import { parsePrometheusText, sumSamples } from './prometheus.ts';

const TEXT = `# HELP inferq_batch_size Requests per batch run by the model.
# TYPE inferq_batch_size histogram
inferq_batch_size_bucket{le="1",service="worker",model="noop"} 3
inferq_batch_size_bucket{le="+Inf",service="worker",model="noop"} 7
inferq_batch_size_sum{service="worker",model="noop"} 41
inferq_batch_size_count{service="worker",model="noop"} 7
inferq_batch_size_count{service="worker",model="ppocr-cls"} 2

inferq_requests_total{model="noop",status="succeeded",service="worker"} 41
inferq_requests_total{model="noop",status="failed",service="worker"} 1
weird_label{path="a \\"quoted\\" \\\\ value\\n"} 1.5e3
process_start_time_seconds 1700000000 1700000000123
`;

describe('parsePrometheusText', () => {
  const samples = parsePrometheusText(TEXT);

  it('reads names, labels and values, skipping comments and blank lines', () => {
    expect(samples).toHaveLength(9);
    expect(samples[1]).toEqual({
      name: 'inferq_batch_size_bucket',
      labels: { le: '+Inf', service: 'worker', model: 'noop' },
      value: 7,
    });
  });

  it('unescapes label values and reads exponents and timestamps', () => {
    expect(samples.find((s) => s.name === 'weird_label')).toEqual({
      name: 'weird_label',
      labels: { path: 'a "quoted" \\ value\n' },
      value: 1500,
    });
    expect(samples.at(-1)).toEqual({ name: 'process_start_time_seconds', labels: {}, value: 1_700_000_000 });
  });

  it('refuses a line it cannot read', () => {
    expect(() => parsePrometheusText('not a metric line at all')).toThrow(/unreadable metrics line/);
  });
});

describe('sumSamples', () => {
  const samples = parsePrometheusText(TEXT);

  it('sums the series whose labels include the ones asked for', () => {
    expect(sumSamples(samples, 'inferq_batch_size_count', { model: 'noop' })).toBe(7);
    expect(sumSamples(samples, 'inferq_batch_size_count')).toBe(9);
    expect(sumSamples(samples, 'inferq_requests_total', { model: 'noop', status: 'succeeded' })).toBe(41);
  });

  it('is 0 when nothing matches', () => {
    expect(sumSamples(samples, 'inferq_requests_total', { status: 'coalesced' })).toBe(0);
    expect(sumSamples(samples, 'absent_metric')).toBe(0);
  });
});
