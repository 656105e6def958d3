{{/*
Names and labels shared by every template. The full name is the release name when it
already contains the chart name, so `helm install ollama-operator …` gives objects named
`ollama-operator`, like manifests/.
*/}}
{{- define "ollama-operator.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "ollama-operator.fullname" -}}
{{- if contains .Chart.Name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "ollama-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ollama-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: controller
{{- end }}

{{- define "ollama-operator.labels" -}}
{{ include "ollama-operator.selectorLabels" . }}
app.kubernetes.io/part-of: ollama-operator
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end }}

{{- define "ollama-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "ollama-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "ollama-operator.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* "true" when the operator watches every namespace (ClusterRole), "" for a list. */}}
{{- define "ollama-operator.clusterWide" -}}
{{- if kindIs "string" .Values.watchNamespaces }}true{{ end }}
{{- end }}

{{/*
The RBAC rules: read from files/role.yaml, a byte-for-byte copy of manifests/rbac/role.yaml
(tests/unit/packaging fails when the two differ), so the chart and the kustomize base
grant exactly the same verbs.
*/}}
{{- define "ollama-operator.rules" -}}
{{- $role := .Files.Get "files/role.yaml" | fromYaml }}
{{- required "files/role.yaml has no rules" $role.rules | toYaml }}
{{- end }}

{{/* The namespaces the sidecar monitor looks in: the watched ones, or all. */}}
{{- define "ollama-operator.monitorNamespaceSelector" -}}
{{- if include "ollama-operator.clusterWide" . -}}
any: true
{{- else -}}
matchNames:
{{ toYaml .Values.watchNamespaces | indent 2 }}
{{- end -}}
{{- end }}
