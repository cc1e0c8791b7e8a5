{{/* vim: set filetype=mustache: */}}
{{/*
Names and labels, as in Ory's Kratos chart.
*/}}
{{- define "kratos-passkeys.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "kratos-passkeys.fullname" -}}
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

{{- define "kratos-passkeys.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "kratos-passkeys.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kratos-passkeys.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "kratos-passkeys.labels" -}}
{{ include "kratos-passkeys.selectorLabels" . }}
helm.sh/chart: {{ include "kratos-passkeys.chart" . }}
{{- if .Chart.AppVersion }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* The two Services. The Ingress template names only the public one. */}}
{{- define "kratos-passkeys.publicServiceName" -}}
{{- printf "%s-public" (include "kratos-passkeys.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "kratos-passkeys.adminServiceName" -}}
{{- printf "%s-admin" (include "kratos-passkeys.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "kratos-passkeys.secretName" -}}
{{- if .Values.secret.nameOverride -}}
{{- .Values.secret.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- include "kratos-passkeys.fullname" . -}}
{{- end -}}
{{- end -}}

{{- define "kratos-passkeys.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "kratos-passkeys.publicPort" -}}
{{- ((.Values.kratosPasskeys.config).public).port | default 8080 -}}
{{- end -}}

{{- define "kratos-passkeys.adminPort" -}}
{{- ((.Values.kratosPasskeys.config).admin).port | default 8081 -}}
{{- end -}}

{{/*
The secrets that may be given in kratosPasskeys.config, as
"section.key": the Secret's key and the service's environment variable.
Their values never reach the ConfigMap.
*/}}
{{- define "kratos-passkeys.secretPaths" -}}
database.url: {key: dsn, env: KRATOS_PASSKEYS__DATABASE__URL, required: true}
ceremonies.keys: {key: ceremoniesKeys, env: KRATOS_PASSKEYS__CEREMONIES__KEYS, required: true}
webhook.api_key: {key: webhookApiKey, env: KRATOS_PASSKEYS__WEBHOOK__API_KEY, required: true}
admin.api_keys: {key: adminApiKeys, env: KRATOS_PASSKEYS__ADMIN__API_KEYS, required: false}
events.endpoints: {key: eventsEndpoints, env: KRATOS_PASSKEYS__EVENTS__ENDPOINTS, required: false}
recovery_hook.notifier_auth_value: {key: recoveryHookNotifierAuthValue, env: KRATOS_PASSKEYS__RECOVERY_HOOK__NOTIFIER_AUTH_VALUE, required: false}
{{- end -}}

{{/* The value at "section.key" of kratosPasskeys.config, or nothing. */}}
{{- define "kratos-passkeys.configValue" -}}
{{- $parts := splitList "." .path -}}
{{- $section := index (.root.Values.kratosPasskeys.config | default dict) (index $parts 0) | default dict -}}
{{- $value := index $section (index $parts 1) -}}
{{- if kindIs "slice" $value -}}
{{- if eq .path "events.endpoints" -}}
{{- if $value }}{{ toJson $value }}{{ end -}}
{{- else -}}
{{- join "," $value -}}
{{- end -}}
{{- else if kindIs "map" $value -}}
{{- fail (printf "kratosPasskeys.config.%s must be a string or a list" .path) -}}
{{- else if $value -}}
{{- $value -}}
{{- end -}}
{{- end -}}

{{/*
The Secret's data (chart-created Secret only). Fails, naming the value, when
a required secret is missing or is a development key of config/base.yaml.
*/}}
{{- define "kratos-passkeys.secretData" -}}
{{- $root := . -}}
{{- $paths := include "kratos-passkeys.secretPaths" . | fromYaml -}}
{{- $data := dict -}}
{{- range $path := keys $paths | sortAlpha -}}
{{- $spec := index $paths $path -}}
{{- $value := include "kratos-passkeys.configValue" (dict "root" $root "path" $path) -}}
{{- if $spec.required -}}
{{- $value = required (printf "kratosPasskeys.config.%s is required: set it (e.g. --set-file, or a values file kept out of version control), or set secret.enabled=false and secret.nameOverride to an existing Secret with key %s" $path $spec.key) ($value | default nil) -}}
{{- end -}}
{{- if $value -}}
{{- $_ := set $data $spec.key $value -}}
{{- end -}}
{{- end -}}
{{- /* The service refuses these too, at start; saying it here fails the install, not the rollout. */ -}}
{{- range $key := splitList "," (index $data "ceremoniesKeys") -}}
{{- if has (trimSuffix "=" (trim $key)) (list "ZGV2ZWxvcG1lbnQgb25seTogbm90IGEgc2VjcmV0ISE" "ZGV2ZWxvcG1lbnQgb25seTogbm90IGEgc2VjcmV0ISE=") -}}
{{- fail "kratosPasskeys.config.ceremonies.keys holds the development key of config/base.yaml: production refuses it (openssl rand -base64 32)" -}}
{{- end -}}
{{- end -}}
{{- if eq (index $data "webhookApiKey") "dev-webhook-key-0123456789" -}}
{{- fail "kratosPasskeys.config.webhook.api_key is the development key of config/base.yaml: production refuses it" -}}
{{- end -}}
{{- $admin := ((.Values.kratosPasskeys.config).admin) | default dict -}}
{{- if and (not (index $data "adminApiKeys")) (not $admin.allow_unauthenticated) -}}
{{- fail "the admin listener listens beyond loopback, so production needs kratosPasskeys.config.admin.api_keys or kratosPasskeys.config.admin.allow_unauthenticated: true (the admin Service is cluster-internal, as Kratos's admin API)" -}}
{{- end -}}
{{- if index $data "adminApiKeys" -}}
{{- /* Prometheus sends one token: the first key (the one a rotation puts first). */ -}}
{{- $_ := set $data "adminMetricsToken" (trim (first (splitList "," (index $data "adminApiKeys")))) -}}
{{- end -}}
{{- toYaml $data -}}
{{- end -}}

{{/*
The rendered configuration: kratosPasskeys.config without its secrets, with
what the chart decides (listen on the pod's address; migrations run by the
hook Job) and the defaults derived from webauthn.origins.
*/}}
{{- define "kratos-passkeys.config" -}}
{{- $config := deepCopy (.Values.kratosPasskeys.config | default dict) -}}
{{- $paths := include "kratos-passkeys.secretPaths" . | fromYaml -}}
{{- range $path := keys $paths -}}
{{- $parts := splitList "." $path -}}
{{- $section := index $config (index $parts 0) -}}
{{- if kindIs "map" $section -}}
{{- $_ := unset $section (index $parts 1) -}}
{{- /* A section left empty would be rendered as {}: leave it to base.yaml. */ -}}
{{- if not $section -}}
{{- $_ := unset $config (index $parts 0) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- $webauthn := $config.webauthn | default dict -}}
{{- $_ := required "kratosPasskeys.config.webauthn.rp_id is required (your site's registrable domain; passkeys are bound to it)" $webauthn.rp_id -}}
{{- $origins := required "kratosPasskeys.config.webauthn.origins is required (the origins of your sign-in pages)" ($webauthn.origins | default nil) -}}
{{- $kratos := $config.kratos | default dict -}}
{{- $_ := required "kratosPasskeys.config.kratos.browser_url is required (the URL browsers use for Kratos)" $kratos.browser_url -}}
{{- $cors := $config.cors | default dict -}}
{{- if not $cors.allowed_origins -}}
{{- $_ := set $cors "allowed_origins" $origins -}}
{{- end -}}
{{- $sessions := $config.sessions | default dict -}}
{{- if not $sessions.refresh_return_to -}}
{{- $_ := set $sessions "refresh_return_to" (printf "%s/" (trimSuffix "/" (first $origins))) -}}
{{- end -}}
{{- $public := $config.public | default dict -}}
{{- $_ := set $public "host" "0.0.0.0" -}}
{{- $admin := $config.admin | default dict -}}
{{- $_ := set $admin "host" "0.0.0.0" -}}
{{- $database := $config.database | default dict -}}
{{- $_ := set $database "run_migrations_on_start" false -}}
{{- $_ := set $config "webauthn" $webauthn -}}
{{- $_ := set $config "kratos" $kratos -}}
{{- $_ := set $config "cors" $cors -}}
{{- $_ := set $config "sessions" $sessions -}}
{{- $_ := set $config "public" $public -}}
{{- $_ := set $config "admin" $admin -}}
{{- $_ := set $config "database" $database -}}
{{- toYaml $config -}}
{{- end -}}

{{/* The secret environment variables, from the Secret (created or existing). */}}
{{- define "kratos-passkeys.secretEnv" -}}
{{- $secretName := include "kratos-passkeys.secretName" . -}}
{{- $paths := include "kratos-passkeys.secretPaths" . | fromYaml -}}
{{- /* Without allow_unauthenticated the admin keys must exist: a Secret lacking them stops the pod at creation, naming the key. */ -}}
{{- $adminKeysRequired := not (((.Values.kratosPasskeys.config).admin).allow_unauthenticated) -}}
{{- range $path := keys $paths | sortAlpha }}
{{- $spec := index $paths $path }}
- name: {{ $spec.env }}
  valueFrom:
    secretKeyRef:
      name: {{ $secretName }}
      key: {{ $spec.key }}
      {{- if not (or $spec.required (and $adminKeysRequired (eq $path "admin.api_keys"))) }}
      optional: true
      {{- end }}
{{- end }}
{{- end -}}

{{/* The environment both the service and the migration Job run with. */}}
{{- define "kratos-passkeys.baseEnv" -}}
- name: KRATOS_PASSKEYS_CONFIG_DIR
  value: /etc/kratos-passkeys/config
- name: KRATOS_PASSKEYS_ENVIRONMENT
  value: production
- name: KRATOS_PASSKEYS_LOG_FORMAT
  value: json
{{- end -}}

{{- define "kratos-passkeys.checksums" -}}
{{- if .Values.secret.hashSumEnabled }}
checksum/config: {{ include (print $.Template.BasePath "/configmap-config.yaml") . | sha256sum }}
{{- if .Values.secret.enabled }}
checksum/secret: {{ include (print $.Template.BasePath "/secrets.yaml") . | sha256sum }}
{{- end }}
{{- end }}
{{- end -}}

{{/*
Validates the Secret settings once, for every template that uses them.
*/}}
{{- define "kratos-passkeys.validateSecret" -}}
{{- if not .Values.secret.enabled -}}
{{- if not .Values.secret.nameOverride -}}
{{- fail "secret.enabled is false: set secret.nameOverride to the existing Secret holding dsn, ceremoniesKeys and webhookApiKey" -}}
{{- end -}}
{{- $root := . -}}
{{- $paths := include "kratos-passkeys.secretPaths" . | fromYaml -}}
{{- range $path := keys $paths | sortAlpha -}}
{{- if include "kratos-passkeys.configValue" (dict "root" $root "path" $path) -}}
{{- fail (printf "kratosPasskeys.config.%s is set but secret.enabled is false: it would be ignored; put it in the existing Secret %s (key %s)" $path $root.Values.secret.nameOverride (index $paths $path).key) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
