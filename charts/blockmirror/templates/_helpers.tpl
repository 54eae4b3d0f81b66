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

{{/*
The sidecars' peer link Secret (tls.crt, tls.key, ca.crt: spiffe://blockmirror/<site>/peer),
or "" when TLS is off. The control server's and the operator's Secrets are separate: each
workload mounts only its own key, and a node's kubelet can fetch only the Secrets of the
pods it runs, so a compromised node never holds the operator's identity.
*/}}
{{- define "blockmirror.tlsSecret" -}}
{{- if .Values.tls.existingSecret -}}
{{- .Values.tls.existingSecret -}}
{{- else if .Values.tls.certManager.enabled -}}
{{- include "blockmirror.fullname" . }}-peer-tls
{{- end -}}
{{- end -}}

{{/* Every sidecar's control server Secret (spiffe://blockmirror/<site>/sidecar-control). */}}
{{- define "blockmirror.controlTlsSecret" -}}
{{- if .Values.tls.existingSecret -}}
{{- default (printf "%s-control" .Values.tls.existingSecret) .Values.tls.existingControlSecret -}}
{{- else if .Values.tls.certManager.enabled -}}
{{- include "blockmirror.fullname" . }}-control-tls
{{- end -}}
{{- end -}}

{{/* The operator's client Secret (spiffe://blockmirror/<site>/operator). */}}
{{- define "blockmirror.operatorTlsSecret" -}}
{{- if .Values.tls.existingSecret -}}
{{- default (printf "%s-operator" .Values.tls.existingSecret) .Values.tls.existingOperatorSecret -}}
{{- else if .Values.tls.certManager.enabled -}}
{{- include "blockmirror.fullname" . }}-operator-tls
{{- end -}}
{{- end -}}

{{/* spiffe://blockmirror/<site>/<role> for tls.site (dict "ctx" . "role" ROLE), "" without a site. */}}
{{- define "blockmirror.identity" -}}
{{- if .ctx.Values.tls.site -}}
{{- printf "spiffe://blockmirror/%s/%s" .ctx.Values.tls.site .role -}}
{{- end -}}
{{- end -}}


{{/* The DNS name the sidecars' certificate carries; the operator verifies it whatever address it dials. */}}
{{- define "blockmirror.sidecarServerName" -}}
{{- default (printf "%s-peer.%s.svc" (include "blockmirror.sidecarName" .) .Release.Namespace) .Values.tls.serverName -}}
{{- end -}}
