{{/* Names, labels and the shared pieces of the pod specs. */}}

{{- define "medgate.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name of the release's objects. A release called "medgate" (or one containing the chart
name) is not doubled: medgate-control-plane, not medgate-medgate-control-plane. Components add a
suffix of up to 14 characters, so the base is cut at 49.
*/}}
{{- define "medgate.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 49 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 49 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 49 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "medgate.controlPlane.fullname" -}}
{{- printf "%s-control-plane" (include "medgate.fullname" .) }}
{{- end }}

{{- define "medgate.proxy.fullname" -}}
{{- printf "%s-proxy" (include "medgate.fullname" .) }}
{{- end }}

{{- define "medgate.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every object. */}}
{{- define "medgate.labels" -}}
helm.sh/chart: {{ include "medgate.chart" . }}
{{ include "medgate.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: medgate
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "medgate.selectorLabels" -}}
app.kubernetes.io/name: {{ include "medgate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Labels and selector of one component: (dict "ctx" $ "component" "proxy"). */}}
{{- define "medgate.componentLabels" -}}
{{ include "medgate.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "medgate.componentSelectorLabels" -}}
{{ include "medgate.selectorLabels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "medgate.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "medgate.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "medgate.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* The Secret holding the MEDGATE_* secrets: the user's or the chart's. */}}
{{- define "medgate.secretName" -}}
{{- default (include "medgate.fullname" .) .Values.secrets.existingSecret }}
{{- end }}

{{- define "medgate.configMapName" -}}
{{- include "medgate.fullname" . }}
{{- end }}

{{- define "medgate.sqlite.claimName" -}}
{{- default (printf "%s-data" (include "medgate.fullname" .)) .Values.database.sqlite.persistence.existingClaim }}
{{- end }}

{{/* "host:port" the containers bind. */}}
{{- define "medgate.listen" -}}
{{- printf "%s:%v" .ctx.Values.listenHost .port }}
{{- end }}

{{/* One MEDGATE_* variable from the Secret: (dict "ctx" $ "name" "MEDGATE_X" "key" "k"). */}}
{{- define "medgate.secretEnv" -}}
- name: {{ .name }}
  valueFrom:
    secretKeyRef:
      name: {{ include "medgate.secretName" .ctx }}
      key: {{ .key }}
{{- end }}

{{/* Environment shared by every medgate container. */}}
{{- define "medgate.commonEnv" -}}
- name: MEDGATE_LOG
  value: {{ .Values.logLevel | quote }}
- name: MEDGATE_DATA_DIR
  value: /var/lib/medgate
{{- if .Values.redis.enabled }}
{{ include "medgate.secretEnv" (dict "ctx" . "name" "MEDGATE_REDIS_URL" "key" .Values.secrets.keys.redisUrl) }}
{{- end }}
{{- end }}

{{/*
Roll the pods when the settings or the secret values change (generated secrets never change,
so the values given, not the rendered Secret, are hashed).
*/}}
{{- define "medgate.checksums" -}}
checksum/config: {{ include (print .Template.BasePath "/configmap.yaml") . | sha256sum }}
checksum/secret: {{ toJson .Values.secrets | sha256sum }}
{{- end }}

{{/* settings.auth.jwt_algorithm, HS256 when unset. */}}
{{- define "medgate.jwtAlgorithm" -}}
{{- dig "auth" "jwt_algorithm" "HS256" .Values.settings }}
{{- end }}

{{/* Fails rendering on combinations the schema cannot express. */}}
{{- define "medgate.validate" -}}
{{- if and (eq .Values.database.type "postgres") (not .Values.secrets.existingSecret) (not .Values.secrets.databaseUrl) }}
{{- fail "database.type postgres needs secrets.databaseUrl or secrets.existingSecret (with the key secrets.keys.databaseUrl)" }}
{{- end }}
{{- if and .Values.redis.enabled (not .Values.secrets.existingSecret) (not .Values.secrets.redisUrl) }}
{{- fail "redis.enabled needs secrets.redisUrl or secrets.existingSecret (with the key secrets.keys.redisUrl)" }}
{{- end }}
{{- if and .Values.proxy.useNodeToken (not .Values.secrets.existingSecret) (not .Values.secrets.nodeToken) }}
{{- fail "proxy.useNodeToken needs secrets.nodeToken or secrets.existingSecret (with the key secrets.keys.nodeToken)" }}
{{- end }}
{{- if and (ne (include "medgate.jwtAlgorithm" .) "HS256") (not .Values.proxy.useNodeToken) }}
{{- fail "with settings.auth.jwt_algorithm RS256 or ES256 the proxy cannot mint its node token: set proxy.useNodeToken" }}
{{- end }}
{{- $as := .Values.proxy.autoscaling }}
{{- if and $as.enabled (not $as.targetCPUUtilizationPercentage) (not $as.targetMemoryUtilizationPercentage) }}
{{- fail "proxy.autoscaling needs targetCPUUtilizationPercentage or targetMemoryUtilizationPercentage" }}
{{- end }}
{{- if and $as.enabled (lt (int $as.maxReplicas) (int $as.minReplicas)) }}
{{- fail "proxy.autoscaling.maxReplicas must be at least minReplicas" }}
{{- end }}
{{- if and .Values.proxy.tls.enabled (not .Values.proxy.tls.secretName) }}
{{- fail "proxy.tls.enabled needs proxy.tls.secretName (a Secret of type kubernetes.io/tls)" }}
{{- end }}
{{- if and (eq .Values.database.type "sqlite") (gt (int .Values.controlPlane.replicas) 1) }}
{{- fail "database.type sqlite allows one control-plane replica; use database.type postgres for more" }}
{{- end }}
{{- end }}
