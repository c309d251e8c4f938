{{/*
Naming rules shared with orchestrator/src/k8s/names.rs: keep them in step.
*/}}

{{/* The resolved plan's text: values.plan, else the chart's sample (files/plan.yaml). */}}
{{- define "testbed.planText" -}}
{{- default (.Files.Get "files/plan.yaml") .Values.plan -}}
{{- end -}}

{{/* The plan, parsed. */}}
{{- define "testbed.plan" -}}
{{- $plan := include "testbed.planText" . | fromYaml -}}
{{- if or (not $plan) (hasKey $plan "Error") (not $plan.groups) -}}
{{- fail "values.plan is not a resolved plan: make one with `orchestrator k8s render PLAN --plan-only > plan.yaml`, then `--set-file plan=plan.yaml`" -}}
{{- end -}}
{{- $plan | toJson -}}
{{- end -}}

{{- define "testbed.runId" -}}
{{- default .Release.Name .Values.runId -}}
{{- end -}}

{{- define "testbed.namespace" -}}
{{- default .Release.Namespace .Values.namespace.name -}}
{{- end -}}

{{- define "testbed.image" -}}
{{- printf "%s:%s" .Values.image.repository .Values.image.tag -}}
{{- end -}}

{{/* names::dns_part(text, 30, "group") */}}
{{- define "testbed.dnsPart" -}}
{{- $s := . | lower | regexReplaceAll "[^a-z0-9]+" "-" | trimAll "-" | trunc 30 | trimSuffix "-" -}}
{{- default "group" $s -}}
{{- end -}}

{{/* names::label_value(text) */}}
{{- define "testbed.labelValue" -}}
{{- regexReplaceAll "[^A-Za-z0-9.-]" . "_" | trunc 63 | trimAll "_.-" -}}
{{- end -}}

{{/* Seconds in a Go duration (`3m`, `1h30m`); humantime's `1h 30m` works once spaces go. */}}
{{- define "testbed.seconds" -}}
{{- $base := toDate "2006-01-02" "2000-01-01" -}}
{{- sub ((dateModify (replace " " "" .) $base) | unixEpoch | int64) ($base | unixEpoch | int64) -}}
{{- end -}}

{{/* Labels of every object (render.rs base_labels). Call with (dict "root" $ "plan" $plan). */}}
{{- define "testbed.labels" -}}
app.kubernetes.io/instance: {{ include "testbed.runId" .root | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/name: pubsub-testbed
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version }}
pubsub-testbed/plan: {{ include "testbed.labelValue" .plan.name | quote }}
{{- end -}}

{{/* Labels of a group's Job and pods. Call with (dict "root" $ "plan" $plan "gi" $gi "g" $g). */}}
{{- define "testbed.nodeLabels" -}}
{{ include "testbed.labels" (dict "root" .root "plan" .plan) }}
app.kubernetes.io/component: node
pubsub-testbed/group: {{ include "testbed.labelValue" .g.id | quote }}
pubsub-testbed/group-index: {{ .gi | quote }}
{{- end -}}

{{/* ResourceRequirements from a plan `resources` map. */}}
{{- define "testbed.resources" -}}
{{- $requests := dict -}}
{{- $limits := dict -}}
{{- with .cpu_request }}{{ $_ := set $requests "cpu" . }}{{ end -}}
{{- with .memory_request }}{{ $_ := set $requests "memory" . }}{{ end -}}
{{- with .cpu_limit }}{{ $_ := set $limits "cpu" . }}{{ end -}}
{{- with .memory_limit }}{{ $_ := set $limits "memory" . }}{{ end -}}
{{- $out := dict -}}
{{- if $limits }}{{ $_ := set $out "limits" $limits }}{{ end -}}
{{- if $requests }}{{ $_ := set $out "requests" $requests }}{{ end -}}
{{- toJson $out -}}
{{- end -}}

{{/* Pod-level settings every pod shares (render.rs pod_defaults). */}}
{{- define "testbed.podSecurity" -}}
automountServiceAccountToken: false
enableServiceLinks: false
securityContext:
  fsGroup: 10001
  runAsGroup: 10001
  runAsNonRoot: true
  runAsUser: 10001
  seccompProfile:
    type: RuntimeDefault
{{- end -}}

{{- define "testbed.containerSecurity" -}}
securityContext:
  allowPrivilegeEscalation: false
  capabilities:
    drop:
    - ALL
  readOnlyRootFilesystem: true
{{- end -}}
