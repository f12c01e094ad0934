/**
 * The metrics inferq really exports, read from its sources (every `name: 'inferq_…'` with its
 * `labelNames`), and the metric references of a PromQL expression, so the dashboard, the alert rules
 * and the KEDA queries can be checked against the code instead of against a list kept by hand.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

export interface MetricDefinition {
  name: string;
  labels: string[];
  histogram: boolean;
}

/** Labels every series has besides its own: inferq's default label and Prometheus's target labels. */
export const SCRAPE_LABELS = ['service', 'job', 'instance', 'pod'];

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .filter((file) => file.endsWith('.ts') && !file.endsWith('.test.ts') && !file.includes('node_modules'))
    .map((file) => join(dir, file));
}

/** Every `inferq_*` metric defined under packages/*\/src and apps/*\/src. */
export function metricsInCode(root: string): Map<string, MetricDefinition> {
  const metrics = new Map<string, MetricDefinition>();
  const dirs = ['packages', 'apps']
    .flatMap((top) => readdirSync(join(root, top)).map((name) => join(root, top, name, 'src')))
    .filter((dir) => existsSync(dir));
  for (const file of dirs.flatMap((dir) => sourceFiles(dir))) {
    const text = readFileSync(file, 'utf8');
    const names = [...text.matchAll(/name:\s*'(inferq_[a-z0-9_]+)'/g)];
    names.forEach((match, index) => {
      // The definition's options object: up to the next metric's name.
      const end = names[index + 1]?.index ?? text.length;
      const options = text.slice(match.index, Math.min(end, match.index + 1500));
      const labelList = /labelNames:\s*\[([^\]]*)\]/.exec(options)?.[1] ?? '';
      const name = match[1] as string;
      metrics.set(name, {
        name,
        labels: [...labelList.matchAll(/'([a-z_]+)'/g)].map((label) => label[1] as string),
        histogram: /\bbuckets:/.test(options),
      });
    });
  }
  return metrics;
}

export interface MetricReference {
  /** As written: a histogram's `_bucket`, `_sum` or `_count` series included. */
  series: string;
  /** Label names of the selector's matchers. */
  labels: string[];
}

/** The inferq series and `up` an expression selects, with the labels it matches on. */
export function metricReferences(expr: string): MetricReference[] {
  return [...expr.matchAll(/\b(inferq_[a-z0-9_]+|up(?=\s*\{))\s*(\{[^}]*\})?/g)].map((match) => ({
    series: match[1] as string,
    labels: [...(match[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)\s*"/g)].map(
      (label) => label[1] as string,
    ),
  }));
}

/**
 * What is wrong with one reference, or undefined: a metric the code does not define, or a label
 * it does not carry.
 */
export function referenceProblem(
  reference: MetricReference,
  metrics: ReadonlyMap<string, MetricDefinition>,
): string | undefined {
  if (reference.series === 'up') {
    const extra = reference.labels.filter((label) => !['job', 'instance'].includes(label));
    return extra.length === 0 ? undefined : `up has no label ${extra.join(', ')}`;
  }
  const suffix = /_(bucket|sum|count)$/.exec(reference.series);
  const base = suffix === null ? reference.series : reference.series.slice(0, suffix.index);
  const metric = metrics.get(reference.series) ?? (suffix === null ? undefined : metrics.get(base));
  if (metric === undefined) return `${reference.series} is not defined in the code`;
  if (metric.name !== reference.series && !metric.histogram) {
    return `${reference.series}: ${metric.name} is not a histogram`;
  }
  const allowed = new Set([...metric.labels, ...SCRAPE_LABELS, ...(suffix?.[1] === 'bucket' ? ['le'] : [])]);
  const unknown = reference.labels.filter((label) => !allowed.has(label));
  return unknown.length === 0 ? undefined : `${reference.series} has no label ${unknown.join(', ')}`;
}
