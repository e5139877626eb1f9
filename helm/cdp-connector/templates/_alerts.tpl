{{/*
The alert rules: the `groups` of a Prometheus rule file, which is also the `spec` of the
PrometheusRule (prometheusrule.yaml). tests/helm/test_chart_alerts.py renders them and
feeds them to promtool; only metrics the connector exports (connector/observability.py).
*/}}

{{- define "cdp-connector.alertSelector" -}}
{{- .Values.metrics.prometheusRule.selector | default (printf "namespace=%q, job=\"%s-metrics\"" .Release.Namespace (include "cdp-connector.fullname" .)) -}}
{{- end -}}

{{- define "cdp-connector.alertRules" -}}
{{- $rule := .Values.metrics.prometheusRule -}}
{{- $sel := include "cdp-connector.alertSelector" . -}}
{{- $window := $rule.window -}}
{{- $docs := "see docs/operations.md, Alerts" -}}
groups:
  - name: cdp-connector
    {{- with $rule.interval }}
    interval: {{ . }}
    {{- end }}
    rules:
      - alert: CdpConnectorLagGrowing
        # Summed over the group's partitions (a partition moving between replicas moves
        # its series); growing over every window for the whole `for`.
        expr: >-
          sum by (namespace, job, topic) (cdp_connector_consumer_lag{ {{- $sel -}} }) > 0
          and
          sum by (namespace, job, topic) (delta(cdp_connector_consumer_lag{ {{- $sel -}} }[{{ $window }}])) > 0
        for: {{ $rule.for.lagGrowing }}
        labels:
          severity: {{ $rule.severity.lagGrowing }}
        annotations:
          summary: Consumer lag of {{ "{{" }} $labels.topic {{ "}}" }} keeps growing
          description: >-
            The group's lag on {{ "{{" }} $labels.topic {{ "}}" }} is {{ "{{" }} $value {{ "}}" }} records and has grown for {{ $rule.for.lagGrowing }}: the connector delivers slower than records arrive ({{ $docs }}).
      - alert: CdpConnectorEventsOld
        # What the CDP receives is old: the 99th percentile of the delivered events' age
        # (answer time - Kafka timestamp) over the window, per topic, whichever replica.
        expr: >-
          histogram_quantile(0.99, sum by (namespace, job, topic, le) (rate(cdp_connector_event_age_seconds_bucket{ {{- $sel -}} }[{{ $window }}]))) > {{ $rule.thresholds.eventAgeSeconds }}
        for: {{ $rule.for.eventsOld }}
        labels:
          severity: {{ $rule.severity.eventsOld }}
        annotations:
          summary: Events of {{ "{{" }} $labels.topic {{ "}}" }} reach the CDP late
          description: >-
            99% of the events from {{ "{{" }} $labels.topic {{ "}}" }} were at most {{ "{{" }} $value | humanizeDuration {{ "}}" }} old when the CDP accepted them, above {{ $rule.thresholds.eventAgeSeconds }}s for {{ $rule.for.eventsOld }}: a backlog being worked off, a slow CDP, or producers whose clocks run behind. Compare with the time lag and the request latency ({{ $docs }}).
      - alert: CdpConnectorTimeLagGrowing
        # Seconds behind, per topic (the worst partition, wherever it is assigned): above
        # the threshold and higher than a window ago, for the whole `for`. A stall
        # (outage, paused or stuck partition) grows it by a second per second.
        expr: >-
          max by (namespace, job, topic) (cdp_connector_time_lag_seconds{ {{- $sel -}} }) > {{ $rule.thresholds.timeLagSeconds }}
          and
          max by (namespace, job, topic) (delta(cdp_connector_time_lag_seconds{ {{- $sel -}} }[{{ $window }}])) > 0
        for: {{ $rule.for.timeLagGrowing }}
        labels:
          severity: {{ $rule.severity.timeLagGrowing }}
        annotations:
          summary: Topic {{ "{{" }} $labels.topic {{ "}}" }} is {{ "{{" }} $value | humanizeDuration {{ "}}" }} behind and falling further
          description: >-
            The oldest record of {{ "{{" }} $labels.topic {{ "}}" }} without an outcome (or waiting at the broker) is {{ "{{" }} $value | humanizeDuration {{ "}}" }} old and the time lag has grown for {{ $rule.for.timeLagGrowing }}: the connector is stalled or delivers slower than records arrive ({{ $docs }}).
      - alert: CdpConnectorNotReady
        expr: >-
          cdp_connector_ready{ {{- $sel -}} } == 0
        for: {{ $rule.for.notReady }}
        labels:
          severity: {{ $rule.severity.notReady }}
        annotations:
          summary: Connector {{ "{{" }} $labels.pod {{ "}}" }} is not ready
          description: >-
            /readyz has answered 503 for {{ $rule.for.notReady }}; its body lists the reasons ({{ $docs }}).
      - alert: CdpConnectorHalted
        expr: >-
          cdp_connector_halted{ {{- $sel -}} } == 1
        for: {{ $rule.for.halted }}
        labels:
          severity: {{ $rule.severity.halted }}
        annotations:
          summary: Connector {{ "{{" }} $labels.pod {{ "}}" }} halted delivery
          description: >-
            Delivery is halted (the CDP refused the credentials, a dead-letter write failed, or retries ran out in halt mode); nothing is delivered until a probe is accepted ({{ $docs }}).
      - alert: CdpConnectorCircuitOpen
        expr: >-
          cdp_connector_circuit_open{ {{- $sel -}} } == 1
        for: {{ $rule.for.circuitOpen }}
        labels:
          severity: {{ $rule.severity.circuitOpen }}
        annotations:
          summary: CDP circuit open on {{ "{{" }} $labels.pod {{ "}}" }}
          description: >-
            The CDP has failed for {{ $rule.for.circuitOpen }} (5xx, 429 or no answer); consumption is paused and resumes by itself when the API answers ({{ $docs }}).
      - alert: CdpConnectorTopicMissing
        # Every replica subscribes to the same topics: one alert per topic, not per pod.
        expr: >-
          max by (namespace, job, topic) (cdp_connector_topic_missing{ {{- $sel -}} }) == 1
        for: {{ $rule.for.topicMissing }}
        labels:
          severity: {{ $rule.severity.topicMissing }}
        annotations:
          summary: Subscribed topic {{ "{{" }} $labels.topic {{ "}}" }} does not exist
          description: >-
            The connector is subscribed to {{ "{{" }} $labels.topic {{ "}}" }}, which the cluster does not have: none of its records are read. Create the topic or fix topics in the config ({{ $docs }}).
      - alert: CdpConnectorDeadLetters
        expr: >-
          sum by (namespace, job, stage) (rate(cdp_connector_records_dead_lettered_total{ {{- $sel -}} }[{{ $window }}])) > 0
        for: {{ $rule.for.deadLetters }}
        labels:
          severity: {{ $rule.severity.deadLetters }}
        annotations:
          summary: Records are being dead-lettered (stage {{ "{{" }} $labels.stage {{ "}}" }})
          description: >-
            {{ "{{" }} $value | humanize {{ "}}" }} records/s go to the dead-letter topic at stage {{ "{{" }} $labels.stage {{ "}}" }}; fix the cause, then replay them with replay-dlq ({{ $docs }}).
      - alert: CdpConnectorCommitFailures
        expr: >-
          sum by (namespace, job) (rate(cdp_connector_commit_failures_total{ {{- $sel -}} }[{{ $window }}])) > 0
        for: {{ $rule.for.commitFailures }}
        labels:
          severity: {{ $rule.severity.commitFailures }}
        annotations:
          summary: Offset commits keep failing
          description: >-
            Offset commits have failed for {{ $rule.for.commitFailures }}; a restart or rebalance would read those records again ({{ $docs }}).
{{- end -}}
