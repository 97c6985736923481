{{/* Names, labels and the pieces every Deployment shares. */}}

{{- define "rerank-sidecar.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "rerank-sidecar.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* A model's name as a DNS label part: registry names may hold dots (qwen3-reranker-0.6b). */}}
{{- define "rerank-sidecar.modelSlug" -}}
{{- . | lower | replace "." "-" | replace "_" "-" | trunc 20 | trimSuffix "-" -}}
{{- end -}}

{{- define "rerank-sidecar.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
app.kubernetes.io/name: {{ include "rerank-sidecar.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "rerank-sidecar.selectorLabels" -}}
app.kubernetes.io/name: {{ include "rerank-sidecar.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "rerank-sidecar.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "rerank-sidecar.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "rerank-sidecar.secretName" -}}
{{- default (printf "%s-secrets" (include "rerank-sidecar.fullname" .)) .Values.secrets.existingSecret -}}
{{- end -}}

{{- define "rerank-sidecar.image" -}}
{{- printf "%s:%s" .image.repository (default .root.Chart.AppVersion .image.tag) -}}
{{- end -}}

{{/* The settings file every part reads: the user's settings, then what the chart decides. */}}
{{- define "rerank-sidecar.settings" -}}
{{- $models := dict -}}
{{- range $name, $model := .Values.models -}}
{{- if and $model $model.spec -}}
{{- $_ := set $models $name $model.spec -}}
{{- end -}}
{{- end -}}
{{- $chart := dict
  "cache_dir" "/var/cache/rerank-sidecar"
  "server" (dict "host" "0.0.0.0" "port" (int .Values.sidecar.port))
  "upstream" (dict "urls" .Values.upstream.urls)
  "worker" (dict "metrics_port" (int .Values.workers.metricsPort) "concurrency" (int .Values.workers.concurrency))
-}}
{{- if .Values.upstream.caSecret -}}
{{- $_ := set $chart.upstream "ca_file" "/etc/rerank-sidecar/ca/ca.crt" -}}
{{- end -}}
{{- if $models -}}
{{- $_ := set $chart "models" $models -}}
{{- end -}}
{{- $settings := mustMergeOverwrite (deepCopy (.Values.settings | default dict)) $chart -}}
{{- toYaml $settings -}}
{{- end -}}

{{/* Broker URL from the Secret: every part; never in the ConfigMap (it may hold a password). */}}
{{- define "rerank-sidecar.brokerEnv" -}}
- name: RERANK_CELERY__BROKER_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "rerank-sidecar.secretName" . }}
      key: broker-url
{{- end -}}

{{- define "rerank-sidecar.configVolume" -}}
- name: settings
  configMap:
    name: {{ include "rerank-sidecar.fullname" . }}-settings
- name: tmp
  emptyDir: {}
{{- if .Values.upstream.caSecret }}
- name: upstream-ca
  secret:
    secretName: {{ .Values.upstream.caSecret }}
{{- end }}
{{- end -}}

{{- define "rerank-sidecar.configMounts" -}}
- name: settings
  mountPath: /etc/rerank-sidecar/sidecar.yaml
  subPath: sidecar.yaml
  readOnly: true
- name: tmp
  mountPath: /tmp
{{- if .Values.upstream.caSecret }}
- name: upstream-ca
  mountPath: /etc/rerank-sidecar/ca
  readOnly: true
{{- end }}
{{- end -}}

{{- define "rerank-sidecar.podCommon" -}}
serviceAccountName: {{ include "rerank-sidecar.serviceAccountName" . }}
automountServiceAccountToken: false
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* A model's worker values: `workers` overridden by the model's entry. Maps merge key by key
(keda, pdb), but where a model says where or how its pods run, its value replaces the default
whole: a GPU pool's nodeSelector must not keep the default's labels. */}}
{{- define "rerank-sidecar.workerValues" -}}
{{- $model := .model | default dict -}}
{{- $w := mustMergeOverwrite (deepCopy .root.Values.workers) (omit $model "spec") -}}
{{- range $key := list "nodeSelector" "tolerations" "affinity" "resources" "modelsVolume" "extraEnv" "podAnnotations" -}}
{{- if hasKey $model $key -}}
{{- $_ := set $w $key (get $model $key) -}}
{{- end -}}
{{- end -}}
{{- toYaml $w -}}
{{- end -}}
