/**
 * Kubernetes objects checked against the Kubernetes OpenAPI schemas (kubernetes-models: the API's
 * schemas compiled into validators, offline) and those of the CRDs inferq's manifests use (KEDA, the
 * Prometheus Operator). A kind not in this table fails the check: no manifest goes unvalidated.
 */
import { ScaledObject } from '@kubernetes-models/keda/keda.sh/v1alpha1';
import { PodMonitor, PrometheusRule } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1';
import { Deployment, StatefulSet } from 'kubernetes-models/apps/v1';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1';
import { ConfigMap, Namespace, Secret, Service } from 'kubernetes-models/v1';

interface Validating {
  validate(): void;
}

const MODELS: Record<string, new (data: never) => Validating> = {
  'v1/Namespace': Namespace,
  'v1/ConfigMap': ConfigMap,
  'v1/Secret': Secret,
  'v1/Service': Service,
  'apps/v1/Deployment': Deployment,
  'apps/v1/StatefulSet': StatefulSet,
  'policy/v1/PodDisruptionBudget': PodDisruptionBudget,
  'keda.sh/v1alpha1/ScaledObject': ScaledObject,
  'monitoring.coreos.com/v1/PodMonitor': PodMonitor,
  'monitoring.coreos.com/v1/PrometheusRule': PrometheusRule,
};

/** Throws with the schema's message when `object` is not a valid object of its apiVersion and kind. */
export function validateKubernetesObject(object: { apiVersion?: unknown; kind?: unknown }): void {
  const type = `${String(object.apiVersion)}/${String(object.kind)}`;
  const Model = MODELS[type];
  if (Model === undefined) throw new Error(`no schema for ${type}: add its model to test/deploy`);
  new Model(object as never).validate();
}
