{{/*
Chart name, truncated to the 63 characters Kubernetes allows in names.
*/}}
{{- define "meshward.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name of the release's objects. The release name is used alone when it
already contains the chart name.
*/}}
{{- define "meshward.fullname" -}}
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

{{/*
Chart name and version, for the helm.sh/chart label.
*/}}
{{- define "meshward.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels that select the controller's pods. Never change these on upgrade:
a Deployment's selector is immutable.
*/}}
{{- define "meshward.selectorLabels" -}}
app.kubernetes.io/name: {{ include "meshward.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Labels for every object of the chart.
*/}}
{{- define "meshward.labels" -}}
helm.sh/chart: {{ include "meshward.chart" . }}
{{ include "meshward.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: controller
app.kubernetes.io/part-of: meshward
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/*
Name of the controller's ServiceAccount.
*/}}
{{- define "meshward.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "meshward.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
Container image reference; the tag defaults to the chart's appVersion.
*/}}
{{- define "meshward.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/*
Name of the Secret holding the mesh CA root.
*/}}
{{- define "meshward.caSecretName" -}}
{{- default (printf "%s-ca" (include "meshward.fullname" .)) .Values.caSecretName }}
{{- end }}

{{/*
Hosts of the signing endpoint's serving certificate, comma-separated: the
Service's names, then signer.extraHosts.
*/}}
{{/*
The names of the release's Service, for the serving certificates the mesh
CA issues to the signing endpoint and the xDS server.
*/}}
{{- define "meshward.serviceHosts" -}}
{{- $svc := printf "%s.%s.svc" (include "meshward.fullname" .) .Release.Namespace }}
{{- join "," (list $svc (printf "%s.%s" $svc .Values.clusterDomain)) }}
{{- end }}

{{- define "meshward.signerHosts" -}}
{{- $svc := printf "%s.%s.svc" (include "meshward.fullname" .) .Release.Namespace }}
{{- $hosts := list $svc (printf "%s.%s" $svc .Values.clusterDomain) }}
{{- join "," (concat $hosts .Values.signer.extraHosts) }}
{{- end }}
