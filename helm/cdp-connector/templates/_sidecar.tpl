{{/*
The connector as a container in someone else's pod. A parent chart that depends on this
chart (mode: sidecar) includes these with the subchart's scope:

  {{- $cdp := index .Subcharts "cdp-connector" }}
  template:
    metadata:
      annotations:
        {{- include "cdp-connector.podAnnotations" $cdp | nindent 8 }}
    spec:
      terminationGracePeriodSeconds: {{ include "cdp-connector.terminationGracePeriodSeconds" $cdp }}
      containers:
        - name: app
          ...
        {{- include "cdp-connector.container" $cdp | nindent 8 }}
      volumes:
        {{- include "cdp-connector.volumes" $cdp | nindent 8 }}

The standalone Deployment uses the same templates. See helm/examples/shop-with-connector.
*/}}

{{/* Pod annotations: checksums of the rendered config and secret, so pods roll on change. */}}
{{- define "cdp-connector.podAnnotations" -}}
{{- $sums := dict -}}
{{- if not .Values.config.existingConfigMap -}}
{{- $_ := set $sums "checksum/cdp-connector-config" (include "cdp-connector.configData" . | sha256sum) -}}
{{- end -}}
{{- if not .Values.secrets.existingSecret -}}
{{- $_ := set $sums "checksum/cdp-connector-secret" (include "cdp-connector.secretData" . | sha256sum) -}}
{{- end -}}
{{- if $sums -}}
{{- toYaml $sums -}}
{{- end -}}
{{- end -}}

{{/* The connector container, as one item of a pod's containers list. */}}
{{- define "cdp-connector.container" -}}
{{- $keys := .Values.secrets.keys -}}
{{- $secret := include "cdp-connector.secretName" . -}}
- name: {{ .Values.containerName }}
  image: {{ include "cdp-connector.image" . | quote }}
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  args: ["run", "--config", "/etc/cdp-connector/connector.yaml"]
  ports:
    - name: cdp-metrics
      containerPort: {{ include "cdp-connector.port" . }}
      protocol: TCP
  env:
    - name: CDP_CLIENT_KEY
      valueFrom:
        secretKeyRef:
          name: {{ $secret }}
          key: {{ $keys.cdpClientKey }}
    - name: CDP_API_TOKEN
      valueFrom:
        secretKeyRef:
          name: {{ $secret }}
          key: {{ $keys.cdpApiToken }}
    - name: KAFKA_SASL_PASSWORD
      valueFrom:
        secretKeyRef:
          name: {{ $secret }}
          key: {{ $keys.kafkaSaslPassword }}
          # Brokers without SASL have no password.
          optional: true
    # Egress proxy credentials, when the proxy wants them.
    - name: CDP_PROXY_USERNAME
      valueFrom:
        secretKeyRef:
          name: {{ $secret }}
          key: {{ $keys.proxyUsername }}
          optional: true
    - name: CDP_PROXY_PASSWORD
      valueFrom:
        secretKeyRef:
          name: {{ $secret }}
          key: {{ $keys.proxyPassword }}
          optional: true
    {{- if .Values.staticMembership.enabled }}
    # Static group membership: one group.instance.id per pod, its name.
    - name: KAFKA_GROUP_INSTANCE_ID
      valueFrom:
        fieldRef:
          fieldPath: metadata.name
    {{- end }}
    {{- with .Values.extraEnv }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  livenessProbe:
    httpGet:
      path: /healthz
      port: cdp-metrics
    {{- toYaml .Values.probes.liveness | nindent 4 }}
  readinessProbe:
    httpGet:
      path: /readyz
      port: cdp-metrics
    {{- toYaml .Values.probes.readiness | nindent 4 }}
  {{- with .Values.resources }}
  resources:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  securityContext:
    {{- toYaml .Values.securityContext | nindent 4 }}
  volumeMounts:
    - name: cdp-connector-config
      mountPath: /etc/cdp-connector
      readOnly: true
    - name: cdp-connector-tmp
      mountPath: /tmp
    {{- if or .Values.cdpTls.caConfigMap .Values.cdpTls.caSecret }}
    - name: cdp-connector-tls-ca
      mountPath: /etc/cdp-connector-tls/ca
      readOnly: true
    {{- end }}
    {{- if .Values.cdpTls.clientCertSecret }}
    - name: cdp-connector-tls-client
      mountPath: /etc/cdp-connector-tls/client
      readOnly: true
    {{- end }}
{{- end -}}

{{/* The connector's volumes, as items of a pod's volumes list. */}}
{{- define "cdp-connector.volumes" -}}
- name: cdp-connector-config
  configMap:
    name: {{ include "cdp-connector.configMapName" . }}
- name: cdp-connector-tmp
  emptyDir:
    sizeLimit: {{ .Values.tmpSizeLimit }}
{{- with .Values.cdpTls }}
{{- if .caConfigMap }}
- name: cdp-connector-tls-ca
  configMap:
    name: {{ .caConfigMap }}
    items:
      - key: {{ .caKey }}
        path: {{ .caKey }}
{{- else if .caSecret }}
- name: cdp-connector-tls-ca
  secret:
    secretName: {{ .caSecret }}
    items:
      - key: {{ .caKey }}
        path: {{ .caKey }}
{{- end }}
{{- if .clientCertSecret }}
- name: cdp-connector-tls-client
  secret:
    secretName: {{ .clientCertSecret }}
    items:
      - key: tls.crt
        path: tls.crt
      - key: tls.key
        path: tls.key
{{- end }}
{{- end }}
{{- end -}}
