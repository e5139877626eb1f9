{{/*
Helpers shared by the standalone templates and the sidecar templates (_sidecar.tpl).
They need only .Values, .Release and .Chart, so a parent chart can call them with the
subchart's own scope: (index .Subcharts "cdp-connector").
*/}}

{{- define "cdp-connector.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "cdp-connector.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := include "cdp-connector.name" . -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "cdp-connector.selectorLabels" -}}
app.kubernetes.io/name: {{ include "cdp-connector.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "cdp-connector.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "cdp-connector.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: consumer
{{- end -}}

{{- define "cdp-connector.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "cdp-connector.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "cdp-connector.configMapName" -}}
{{- default (include "cdp-connector.fullname" .) .Values.config.existingConfigMap -}}
{{- end -}}

{{- define "cdp-connector.secretName" -}}
{{- default (include "cdp-connector.fullname" .) .Values.secrets.existingSecret -}}
{{- end -}}

{{- define "cdp-connector.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* The connector's HTTP port: /healthz, /readyz, /metrics. */}}
{{- define "cdp-connector.port" -}}
{{- $obs := .Values.config.connector.observability | default dict -}}
{{- $obs.port | default 9400 | int -}}
{{- end -}}

{{/* Drain timeout plus a margin, so Kubernetes never SIGKILLs a draining connector. */}}
{{- define "cdp-connector.terminationGracePeriodSeconds" -}}
{{- $shutdown := .Values.config.connector.shutdown | default dict -}}
{{- $drain := $shutdown.drain_timeout_seconds | default 30 | float64 -}}
{{- add (ceil $drain | int) (.Values.terminationGraceExtraSeconds | int) -}}
{{- end -}}

{{/*
connector.yaml as rendered into the ConfigMap: the values' sections, plus what the chart
owns (where the mapping file is and which env vars hold the secrets).
*/}}
{{- define "cdp-connector.connectorYaml" -}}
{{- $conf := deepCopy .Values.config.connector -}}
{{- $kafka := get $conf "kafka" | default dict -}}
{{- $_ := set $kafka "sasl_password_env" "KAFKA_SASL_PASSWORD" -}}
{{- if .Values.staticMembership.enabled -}}
{{- $_ = set $kafka "group_instance_id_env" "KAFKA_GROUP_INSTANCE_ID" -}}
{{- end -}}
{{- $_ = set $conf "kafka" $kafka -}}
{{- $cdp := get $conf "cdp" | default dict -}}
{{- $_ = set $cdp "client_key_env" "CDP_CLIENT_KEY" -}}
{{- $_ = set $cdp "api_token_env" "CDP_API_TOKEN" -}}
{{- $_ = set $cdp "proxy_username_env" "CDP_PROXY_USERNAME" -}}
{{- $_ = set $cdp "proxy_password_env" "CDP_PROXY_PASSWORD" -}}
{{- $tls := get $cdp "tls" | default dict -}}
{{- with .Values.cdpTls -}}
{{- if or .caConfigMap .caSecret -}}
{{- $_ = set $tls "ca_file" (printf "/etc/cdp-connector-tls/ca/%s" .caKey) -}}
{{- end -}}
{{- if .clientCertSecret -}}
{{- $_ = set $tls "cert_file" "/etc/cdp-connector-tls/client/tls.crt" -}}
{{- $_ = set $tls "key_file" "/etc/cdp-connector-tls/client/tls.key" -}}
{{- end -}}
{{- end -}}
{{- if $tls -}}
{{- $_ = set $cdp "tls" $tls -}}
{{- end -}}
{{- $_ = set $conf "cdp" $cdp -}}
{{- $_ = set $conf "mapping" "mappings.yaml" -}}
{{- toYaml $conf -}}
{{- end -}}

{{/* The ConfigMap's data; its hash rolls the pods when it changes. */}}
{{- define "cdp-connector.configData" -}}
connector.yaml: |
  {{- include "cdp-connector.connectorYaml" . | nindent 2 }}
mappings.yaml: |
  {{- .Values.config.mappings | default (.Files.Get "files/mappings.example.yaml") | trimSuffix "\n" | nindent 2 }}
{{- range $name, $content := .Values.config.extraFiles }}
{{ $name }}: |
  {{- $content | trimSuffix "\n" | nindent 2 }}
{{- end }}
{{- end -}}

{{/* The chart-managed Secret's data (base64), when there is no existingSecret. */}}
{{- define "cdp-connector.secretData" -}}
{{- $keys := .Values.secrets.keys -}}
{{- $hint := "is required unless secrets.existingSecret names a Secret you manage" -}}
{{ $keys.cdpClientKey }}: {{ required (printf "secrets.cdpClientKey %s" $hint) .Values.secrets.cdpClientKey | b64enc | quote }}
{{ $keys.cdpApiToken }}: {{ required (printf "secrets.cdpApiToken %s" $hint) .Values.secrets.cdpApiToken | b64enc | quote }}
{{- if .Values.secrets.kafkaSaslPassword }}
{{ $keys.kafkaSaslPassword }}: {{ .Values.secrets.kafkaSaslPassword | b64enc | quote }}
{{- end }}
{{- if .Values.secrets.proxyUsername }}
{{ $keys.proxyUsername }}: {{ .Values.secrets.proxyUsername | b64enc | quote }}
{{ $keys.proxyPassword }}: {{ .Values.secrets.proxyPassword | b64enc | quote }}
{{- end }}
{{- end -}}
