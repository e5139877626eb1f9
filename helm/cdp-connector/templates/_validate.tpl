{{/* Checks across values that the JSON schema cannot express; fail with the field named. */}}

{{- define "cdp-connector.kedaMaxReplicas" -}}
{{- $keda := .Values.keda -}}
{{- if kindIs "invalid" $keda.maxReplicas -}}
{{- $keda.partitionCount | int -}}
{{- else -}}
{{- $keda.maxReplicas | int -}}
{{- end -}}
{{- end -}}

{{/* The topic KEDA measures lag on: keda.topic, else the only named topic, else none. */}}
{{- define "cdp-connector.kedaTopic" -}}
{{- if .Values.keda.topic -}}
{{- .Values.keda.topic -}}
{{- else -}}
{{- $topics := .Values.config.connector.topics | default list -}}
{{- if eq (len $topics) 1 -}}
{{- (first $topics).name | default "" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "cdp-connector.validate" -}}
{{- if and .Values.cdpTls.caConfigMap .Values.cdpTls.caSecret -}}
{{- fail "cdpTls: the CA bundle comes from caConfigMap or caSecret, not both" -}}
{{- end -}}
{{- $pdb := .Values.podDisruptionBudget -}}
{{- if and $pdb.enabled (kindIs "invalid" $pdb.maxUnavailable) (kindIs "invalid" $pdb.minAvailable) -}}
{{- fail "podDisruptionBudget: set maxUnavailable or minAvailable (or enabled: false)" -}}
{{- end -}}
{{- $keda := .Values.keda -}}
{{- if $keda.enabled -}}
{{- $max := include "cdp-connector.kedaMaxReplicas" . | int -}}
{{- if and (gt $max ($keda.partitionCount | int)) (not $keda.allowIdleConsumers) -}}
{{- fail (printf "keda.maxReplicas (%d) is higher than keda.partitionCount (%d): the extra consumers would sit idle; lower it or set keda.allowIdleConsumers" $max ($keda.partitionCount | int)) -}}
{{- end -}}
{{- if gt ($keda.minReplicas | int) $max -}}
{{- fail (printf "keda.minReplicas (%d) is higher than keda.maxReplicas (%d)" ($keda.minReplicas | int) $max) -}}
{{- end -}}
{{- end -}}
{{- end -}}
