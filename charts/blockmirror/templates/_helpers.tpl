{{/* Names and labels shared by every template. */}}

{{- define "blockmirror.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The release's prefix for object names: "<release>" when it already says blockmirror. */}}
{{- define "blockmirror.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "blockmirror.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "blockmirror.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: blockmirror
{{- end -}}

{{/* Selector labels of one component: include with (dict "ctx" . "component" "operator"). */}}
{{- define "blockmirror.selectorLabels" -}}
app.kubernetes.io/name: {{ include "blockmirror.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "blockmirror.operatorName" -}}{{ include "blockmirror.fullname" . }}-operator{{- end -}}
{{- define "blockmirror.sidecarName" -}}{{ include "blockmirror.fullname" . }}-sidecar{{- end -}}

{{- define "blockmirror.image" -}}
{{- $img := index .ctx.Values.image .component -}}
{{- printf "%s:%s" $img.repository (default .ctx.Chart.AppVersion $img.tag) -}}
{{- end -}}

{{/* The Secret with tls.crt, tls.key and ca.crt, or "" when TLS is off. */}}
{{- define "blockmirror.tlsSecret" -}}
{{- if .Values.tls.existingSecret -}}
{{- .Values.tls.existingSecret -}}
{{- else if .Values.tls.certManager.enabled -}}
{{- include "blockmirror.fullname" . }}-peer-tls
{{- end -}}
{{- end -}}


{{/* The DNS name the sidecars' certificate carries; the operator verifies it whatever address it dials. */}}
{{- define "blockmirror.sidecarServerName" -}}
{{- default (printf "%s-peer.%s.svc" (include "blockmirror.sidecarName" .) .Release.Namespace) .Values.tls.serverName -}}
{{- end -}}
