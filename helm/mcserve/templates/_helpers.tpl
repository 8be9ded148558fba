{{- define "mcserve.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "mcserve.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "mcserve.labels" -}}
app.kubernetes.io/name: {{ include "mcserve.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "mcserve.selectorLabels" -}}
app.kubernetes.io/name: {{ include "mcserve.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: server
{{- end -}}

{{/* Seconds in a duration like "30s", "2m", "1h" (other forms: 0). */}}
{{- define "mcserve.seconds" -}}
{{- $d := . -}}
{{- if hasSuffix "ms" $d -}}0
{{- else if hasSuffix "s" $d -}}{{ trimSuffix "s" $d | int }}
{{- else if hasSuffix "m" $d -}}{{ mul (trimSuffix "m" $d | int) 60 }}
{{- else if hasSuffix "h" $d -}}{{ mul (trimSuffix "h" $d | int) 3600 }}
{{- else -}}0{{- end -}}
{{- end -}}

{{/* Cross-field checks the schema cannot express. */}}
{{- define "mcserve.validate" -}}
{{- $grace := include "mcserve.seconds" .Values.server.shutdownGrace | int -}}
{{- if le (int .Values.terminationGracePeriodSeconds) (add $grace 15) -}}
{{- fail (printf "terminationGracePeriodSeconds (%d) must exceed server.shutdownGrace (%ds) by more than 15 s, the time to save sessions" (int .Values.terminationGracePeriodSeconds) $grace) -}}
{{- end -}}
{{- if and .Values.persistence.enabled (gt (int .Values.replicaCount) 1) (not (has "ReadWriteMany" .Values.persistence.accessModes)) -}}
{{- fail "persistence with replicaCount > 1 needs persistence.accessModes to include ReadWriteMany (one volume shared by the replicas)" -}}
{{- end -}}
{{- if and .Values.tls.enabled (not .Values.tls.secretName) -}}
{{- fail "tls.enabled needs tls.secretName (a kubernetes.io/tls Secret)" -}}
{{- end -}}
{{- if and .Values.tls.clientCaSecretName (not .Values.tls.enabled) -}}
{{- fail "tls.clientCaSecretName (mutual TLS) needs tls.enabled" -}}
{{- end -}}
{{- if and .Values.router.enabled .Values.tls.clientCaSecretName -}}
{{- fail "the router cannot pass client certificates on: with router.enabled use bearer tokens (auth), not tls.clientCaSecretName" -}}
{{- end -}}
{{- if and .Values.networkPolicy.enabled (not .Values.router.enabled) (not .Values.networkPolicy.grpcFrom) -}}
{{- fail "networkPolicy.enabled needs networkPolicy.grpcFrom peers (or router.enabled): otherwise nothing may reach the gRPC port" -}}
{{- end -}}
{{- if and .Values.auth.enabled (not .Values.auth.secretName) -}}
{{- fail "auth.enabled needs auth.secretName (a Secret with key principals)" -}}
{{- end -}}
{{- if and .Values.autoscaling.enabled (lt (int .Values.autoscaling.maxReplicas) (int .Values.autoscaling.minReplicas)) -}}
{{- fail "autoscaling.maxReplicas must be >= autoscaling.minReplicas" -}}
{{- end -}}
{{- end -}}
