{{/* Names and labels. */}}
{{- define "kafkagate.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "kafkagate.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "kafkagate.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "kafkagate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* selectorLabels: call with (dict "ctx" $ "component" "gateway"). */}}
{{- define "kafkagate.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kafkagate.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "kafkagate.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "kafkagate.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "kafkagate.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "kafkagate.configPath" -}}/etc/kafkagate/kafkagate.ini{{- end -}}

{{/* The gateway's URL scheme. */}}
{{- define "kafkagate.scheme" -}}{{ if .Values.tls.enabled }}HTTPS{{ else }}HTTP{{ end }}{{- end -}}

{{/*
vaultEnv: the VAULT_* environment. Call with
(dict "ctx" $ "role" <kubernetes role> "approle" <secret name override>).
*/}}
{{- define "kafkagate.vaultEnv" -}}
{{- $v := .ctx.Values.vault -}}
- name: VAULT_ADDR
  value: {{ required "vault.address is required" $v.address | quote }}
{{- if $v.namespace }}
- name: VAULT_NAMESPACE
  value: {{ $v.namespace | quote }}
{{- end }}
{{- if $v.caSecret.name }}
- name: VAULT_CACERT
  value: /etc/kafkagate/vault-ca/{{ $v.caSecret.key }}
{{- end }}
{{- if eq $v.auth "kubernetes" }}
- name: VAULT_K8S_ROLE
  value: {{ required "vault.kubernetes role is required" .role | quote }}
- name: VAULT_K8S_MOUNT
  value: {{ $v.kubernetes.mount | quote }}
{{- else if eq $v.auth "approle" }}
- name: VAULT_ROLE_ID_FILE
  value: /etc/kafkagate/approle/{{ $v.approle.roleIdKey }}
- name: VAULT_SECRET_ID_FILE
  value: /etc/kafkagate/approle/{{ $v.approle.secretIdKey }}
- name: VAULT_APPROLE_MOUNT
  value: {{ $v.approle.mount | quote }}
{{- else }}
{{- fail (printf "vault.auth must be kubernetes or approle, not %q" $v.auth) }}
{{- end }}
{{- end -}}

{{/* vaultMounts / vaultVolumes: the AppRole and CA files. Same dict. */}}
{{- define "kafkagate.vaultMounts" -}}
{{- $v := .ctx.Values.vault -}}
{{- if eq $v.auth "approle" }}
- name: approle
  mountPath: /etc/kafkagate/approle
  readOnly: true
{{- end }}
{{- if $v.caSecret.name }}
- name: vault-ca
  mountPath: /etc/kafkagate/vault-ca
  readOnly: true
{{- end }}
{{- end -}}

{{- define "kafkagate.vaultVolumes" -}}
{{- $v := .ctx.Values.vault -}}
{{- if eq $v.auth "approle" }}
- name: approle
  secret:
    secretName: {{ required "vault.approle.secretName is required with vault.auth=approle" (default $v.approle.secretName (get . "approle")) }}
    defaultMode: 0440
    items:
      - key: {{ $v.approle.roleIdKey }}
        path: {{ $v.approle.roleIdKey }}
      - key: {{ $v.approle.secretIdKey }}
        path: {{ $v.approle.secretIdKey }}
{{- end }}
{{- if $v.caSecret.name }}
- name: vault-ca
  secret:
    secretName: {{ $v.caSecret.name }}
    items:
      - key: {{ $v.caSecret.key }}
        path: {{ $v.caSecret.key }}
{{- end }}
{{- end -}}

{{/* drainArgs: the gateway's drain flags (drain.flags). */}}
{{- define "kafkagate.drainArgs" -}}
{{- if .Values.drain.flags }}
- --drain-delay={{ .Values.drain.delaySeconds }}s
- --drain-timeout={{ .Values.drain.timeoutSeconds }}s
{{- end }}
{{- end -}}

{{- define "kafkagate.gracePeriod" -}}
{{- add .Values.drain.delaySeconds .Values.drain.timeoutSeconds 5 -}}
{{- end -}}
