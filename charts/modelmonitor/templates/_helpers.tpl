{{/* Chart name, overridable. */}}
{{- define "modelmonitor.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: release + chart name, unless the release name already contains it. */}}
{{- define "modelmonitor.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "modelmonitor.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "modelmonitor.selectorLabels" -}}
app.kubernetes.io/name: {{ include "modelmonitor.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "modelmonitor.labels" -}}
helm.sh/chart: {{ include "modelmonitor.chart" . }}
{{ include "modelmonitor.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: modelmonitor
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "modelmonitor.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "modelmonitor.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "modelmonitor.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag | toString) }}
{{- end }}
{{- end }}

{{/*
The namespaces the operator watches, validated, as a JSON list (empty = whole cluster).
scope=cluster: watchNamespaces as given (names or globs), [] = every namespace.
scope=namespace: exact names only, [] = the release namespace.
*/}}
{{- define "modelmonitor.watchNamespaces" -}}
{{- $scope := .Values.scope }}
{{- if not (has $scope (list "cluster" "namespace")) }}
{{- fail (printf "scope must be \"cluster\" or \"namespace\", got %q" (toString $scope)) }}
{{- end }}
{{- $watched := .Values.watchNamespaces | default list }}
{{- if not (kindIs "slice" $watched) }}
{{- fail "watchNamespaces must be a list of namespace names" }}
{{- end }}
{{- if has "*" $watched }}
{{- if eq $scope "namespace" }}
{{- fail "watchNamespaces: \"*\" (every namespace) needs scope: cluster" }}
{{- end }}
{{- $watched = list }}
{{- end }}
{{- if eq $scope "namespace" }}
{{- if not $watched }}
{{- $watched = list .Release.Namespace }}
{{- end }}
{{- range $watched }}
{{- if regexMatch "[*?!\\[\\]]" . }}
{{- fail (printf "watchNamespaces: %q is a pattern; scope: namespace needs exact names (a Role per namespace), use scope: cluster for patterns" .) }}
{{- end }}
{{- end }}
{{- end }}
{{- $watched | uniq | toJson }}
{{- end }}

{{/* Exact (non-pattern) names among the watched namespaces, as a JSON list. */}}
{{- define "modelmonitor.exactNamespaces" -}}
{{- $exact := list }}
{{- range (include "modelmonitor.watchNamespaces" . | fromJsonArray) }}
{{- if not (regexMatch "[*?\\[\\]!]" .) }}
{{- $exact = append $exact . }}
{{- end }}
{{- end }}
{{- $exact | toJson }}
{{- end }}

{{/* Whether any remediation action is granted. */}}
{{- define "modelmonitor.anyAction" -}}
{{- $a := .Values.rbac.actions }}
{{- if or $a.rollback $a.scale $a.notify $a.kserve $a.retrain $a.gitops }}true{{ end }}
{{- end }}

{{/* Rules the operator needs in every namespace it watches. */}}
{{- define "modelmonitor.namespacedRules" -}}
# The ModelMonitor resources: watch them, keep finalizers/annotations, write status.
- apiGroups: [modelmonitor.io]
  resources: [modelmonitors]
  verbs: [get, list, watch, patch, update]
- apiGroups: [modelmonitor.io]
  resources: [modelmonitors/status]
  verbs: [get, patch, update]
# Kubernetes Events about each monitor (kopf posts core/v1 Events).
- apiGroups: [""]
  resources: [events]
  verbs: [create, patch]
- apiGroups: [events.k8s.io]
  resources: [events]
  verbs: [create, patch]
# Objects a monitor refers to: checked to exist, read for endpoints and reference data.
- apiGroups: [apps]
  resources: [deployments]
  verbs: [get, list, watch]
- apiGroups: [serving.kserve.io]
  resources: [inferenceservices]
  verbs: [get]
- apiGroups: [""]
  resources: [services, configmaps]
  verbs: [get, list, watch]
# Endpoint resolution without cluster DNS (ENDPOINT_RESOLUTION=endpointSlices or pods).
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [list]
- apiGroups: [""]
  resources: [pods]
  verbs: [list]
{{- end }}

{{/* Payload-log tokens: create each monitor's token Secret, read it back. */}}
{{- define "modelmonitor.prometheusAuthRules" -}}
- apiGroups: [""]
  resources: [secrets]
  verbs: [get]
{{- end }}

{{- define "modelmonitor.payloadTokenRules" -}}
- apiGroups: [""]
  resources: [secrets]
  verbs: [get, create]
{{- end }}

{{/* Rules only a cluster-wide operator needs. */}}
{{- define "modelmonitor.clusterRules" -}}
# kopf's cluster discovery: namespaces (for namespace patterns) and CRDs.
- apiGroups: [""]
  resources: [namespaces]
  verbs: [list, watch]
- apiGroups: [apiextensions.k8s.io]
  resources: [customresourcedefinitions]
  verbs: [list, watch]
{{- end }}

{{/*
Remediation rules, one block per enabled action (rbac.actions.*): exactly the calls its
executor makes (operator/modelmonitor/actions/*.py, through modelmonitor.adapters.kube.KubePaths),
each block complete on its own even where the monitoring rules overlap it.
tests/e2e/test_action_rbac.py holds the table these blocks must match.
*/}}
{{- define "modelmonitor.actionRules" -}}
{{- $a := .Values.rbac.actions }}
{{- if $a.rollback }}
# rollback (actions/rollback.py, remediation.observe_revision): read the target Deployment
# and list its ReplicaSets (the revisions), then one JSON patch back to a healthy template.
- apiGroups: [apps]
  resources: [deployments]
  verbs: [get, patch]
- apiGroups: [apps]
  resources: [replicasets]
  verbs: [list]
{{- end }}
{{- if $a.scale }}
# scale (actions/scale.py): spec.replicas of the Deployment, or the minReplicas of the
# HorizontalPodAutoscaler (autoscaling/v2) that targets it; found by listing them.
- apiGroups: [apps]
  resources: [deployments]
  verbs: [get, patch]
- apiGroups: [autoscaling]
  resources: [horizontalpodautoscalers]
  verbs: [get, list, patch]
{{- end }}
{{- if $a.notify }}
# notify (actions/notify.py): read the webhook URL from the Secret named in
# spec.actions.notify (get only: it cannot list, so it cannot enumerate Secrets).
- apiGroups: [""]
  resources: [secrets]
  verbs: [get]
{{- end }}
{{- if $a.kserve }}
# kserve (actions/kserve.py): read an InferenceService, set its canary traffic back to 0.
- apiGroups: [serving.kserve.io]
  resources: [inferenceservices]
  verbs: [get, patch]
{{- end }}
{{- if $a.retrain }}
# retrain (actions/retrain.py): list the monitor's retraining Jobs, create one.
- apiGroups: [batch]
  resources: [jobs]
  verbs: [list, create]
{{- end }}
{{- if $a.gitops }}
# gitops (actions/gitops.py, spec.actions.gitops: pause): suspend and resume the Argo CD
# Application or Flux Kustomization/HelmRelease that owns a rolled-back target. Only
# owners in the monitor's own namespace are ever touched (docs/actions.md).
- apiGroups: [argoproj.io]
  resources: [applications]
  verbs: [get, patch]
- apiGroups: [kustomize.toolkit.fluxcd.io]
  resources: [kustomizations]
  verbs: [get, patch]
- apiGroups: [helm.toolkit.fluxcd.io]
  resources: [helmreleases]
  verbs: [get, patch]
# and read the revision a paused Kustomization's source fetched (to resume it).
- apiGroups: [source.toolkit.fluxcd.io]
  resources: [gitrepositories, ocirepositories]
  verbs: [get]
{{- end }}
{{- end }}

{{/*
The operator's rules for job-mode runs (jobMode.enabled), in jobMode.namespaces only: a
Job per run, read back, then deleted. Separate from the retrain rule (rbac.actions.retrain).
*/}}
{{- define "modelmonitor.jobModeOperatorRules" -}}
- apiGroups: [batch]
  resources: [jobs]
  verbs: [create, get, list, watch, delete]
{{- if .Values.rbac.daskJobs }}
# spec.schedule.dask.cluster (engine/daskjob_runner.py): a DaskJob per run, made into a
# cluster and a run pod by the dask-kubernetes operator (installed by the cluster admin).
- apiGroups: [kubernetes.dask.org]
  resources: [daskjobs]
  verbs: [create, get, list, delete]
{{- end }}
{{- end }}

{{/* Rules of a job-mode run's own ServiceAccount (jobMode.*). */}}
{{- define "modelmonitor.jobRunRules" -}}
# Read its monitor and what the monitor refers to, store the report in a ConfigMap.
- apiGroups: [modelmonitor.io]
  resources: [modelmonitors]
  verbs: [get]
- apiGroups: [""]
  resources: [configmaps]
  verbs: [get, create]
- apiGroups: [""]
  resources: [services, pods]
  verbs: [get, list]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [list]
{{- if .Values.jobMode.readSecrets }}
# The Secrets a job-mode monitor names (spec.prometheus credentials, a reference or
# spec.data.partitions in object storage): the run reads them itself. get, never list.
- apiGroups: [""]
  resources: [secrets]
  verbs: [get]
{{- end }}
{{- end }}
