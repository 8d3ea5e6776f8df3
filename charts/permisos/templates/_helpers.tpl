{{/*
Names, labels and the pieces every pod shares. The label helpers take a context and a component:
  include "permisos.labels" (dict "context" $ "component" "api")
(`(list $ "api")` works too.) Components: api, operator, runner, portal, payments, migrate,
reconcile, cleanup, reminders.
*/}}

{{/* The prefix of every object's name: at most 40 characters, so suffixes fit in 63. */}}
{{- define "permisos.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else if contains "permisos" .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-permisos" .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "permisos.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The argument is a dict with context (or ctx/root/top) and component, or a list. */}}
{{- define "permisos.selectorLabels" -}}
{{- $ctx := . -}}
{{- $component := "" -}}
{{- if kindIs "slice" . -}}
{{- $ctx = index . 0 -}}
{{- $component = index . 1 -}}
{{- else if hasKey . "component" -}}
{{- $ctx = coalesce (get . "context") (get . "ctx") (get . "root") (get . "top") -}}
{{- $component = get . "component" -}}
{{- end -}}
app.kubernetes.io/name: permisos
app.kubernetes.io/instance: {{ $ctx.Release.Name }}
{{- with $component }}
app.kubernetes.io/component: {{ . }}
{{- end }}
{{- end -}}

{{- define "permisos.labels" -}}
{{- $ctx := . -}}
{{- if kindIs "slice" . -}}
{{- $ctx = index . 0 -}}
{{- else if hasKey . "component" -}}
{{- $ctx = coalesce (get . "context") (get . "ctx") (get . "root") (get . "top") -}}
{{- end -}}
{{ include "permisos.selectorLabels" . }}
app.kubernetes.io/part-of: permisos
app.kubernetes.io/version: {{ $ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ $ctx.Release.Service }}
helm.sh/chart: {{ include "permisos.chart" $ctx }}
{{- end -}}

{{/* An image reference, repository:tag; an empty tag is the chart's appVersion.
     Call with (dict "context" $ "image" .Values.api.image). */}}
{{- define "permisos.image" -}}
{{- printf "%s:%s" .image.repository (.image.tag | default .context.Chart.AppVersion | toString) -}}
{{- end -}}

{{- define "permisos.serviceAccountName" -}}
{{- printf "%s-%s" (include "permisos.fullname" .context) .component -}}
{{- end -}}

{{- define "permisos.peeringName" -}}
{{- .Values.operator.peeringName | default (include "permisos.fullname" .) -}}
{{- end -}}

{{/* The portal the runners drive: portal.url, else the simulator's Service, else empty. */}}
{{- define "permisos.portalUrl" -}}
{{- if .Values.portal.url -}}
{{- .Values.portal.url -}}
{{- else if .Values.simulators.portal.enabled -}}
{{- printf "http://%s-portal:%d" (include "permisos.fullname" .) (int .Values.simulators.portal.port) -}}
{{- end -}}
{{- end -}}

{{- define "permisos.stripeApiBase" -}}
{{- if .Values.stripe.apiBase -}}
{{- .Values.stripe.apiBase -}}
{{- else if .Values.simulators.payments.enabled -}}
{{- printf "http://%s-payments:%d" (include "permisos.fullname" .) (int .Values.simulators.payments.port) -}}
{{- end -}}
{{- end -}}

{{/* The restricted Pod Security Standard, at pod level. The images run as user 10001. */}}
{{- define "permisos.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* ...and at container level: nothing to escalate to, nothing to write outside the volumes. */}}
{{- define "permisos.containerSecurityContext" -}}
runAsNonRoot: true
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop:
    - ALL
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* `imagePullSecrets:` of a pod spec, or nothing. Use with `with include ... | nindent`. */}}
{{- define "permisos.imagePullSecrets" -}}
{{- with .Values.imagePullSecrets -}}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end -}}
{{- end -}}

{{/* A `secretKeyRef` environment variable. Call with (list NAME SECRET KEY). */}}
{{- define "permisos.secretEnv" -}}
- name: {{ index . 0 }}
  valueFrom:
    secretKeyRef:
      name: {{ index . 1 }}
      key: {{ index . 2 }}
{{- end -}}

{{/* AWS credentials from s3.existingSecret, when one is named (else: workload identity). */}}
{{- define "permisos.s3CredentialsEnv" -}}
{{- with .Values.s3.existingSecret }}
{{ include "permisos.secretEnv" (list "AWS_ACCESS_KEY_ID" . "AWS_ACCESS_KEY_ID") }}
{{ include "permisos.secretEnv" (list "AWS_SECRET_ACCESS_KEY" . "AWS_SECRET_ACCESS_KEY") }}
{{- end }}
{{- end -}}

{{/* The environment of every process of the API image: the server, migrations, CronJobs. */}}
{{- define "permisos.api.env" -}}
- name: PERMISOS_API_ENVIRONMENT
  value: {{ .Values.api.environment | quote }}
- name: PERMISOS_API_LOG_LEVEL
  value: {{ .Values.api.logLevel | quote }}
{{ include "permisos.secretEnv" (list "PERMISOS_API_DATABASE_URL" .Values.database.existingSecret .Values.database.urlKey) }}
- name: PERMISOS_API_DATABASE_POOL_SIZE
  value: {{ .Values.api.databasePoolSize | quote }}
- name: PERMISOS_API_PUBLIC_BASE_URL
  value: {{ .Values.api.publicBaseUrl | quote }}
{{ include "permisos.secretEnv" (list "PERMISOS_API_SIGNING_SECRET" .Values.signing.existingSecret .Values.signing.key) }}
{{- with .Values.api.cookieDomain }}
- name: PERMISOS_API_COOKIE_DOMAIN
  value: {{ . | quote }}
{{- end }}
- name: PERMISOS_API_MAIL_OUTBOX_DIR
  value: /var/lib/permisos/mail
- name: PERMISOS_API_MAIL_FROM
  value: {{ .Values.smtp.from | quote }}
- name: PERMISOS_API_SMTP_HOST
  value: {{ .Values.smtp.host | quote }}
- name: PERMISOS_API_SMTP_PORT
  value: {{ .Values.smtp.port | quote }}
- name: PERMISOS_API_SMTP_STARTTLS
  value: {{ .Values.smtp.starttls | quote }}
{{- with .Values.smtp.existingSecret }}
{{ include "permisos.secretEnv" (list "PERMISOS_API_SMTP_USERNAME" . $.Values.smtp.usernameKey) }}
{{ include "permisos.secretEnv" (list "PERMISOS_API_SMTP_PASSWORD" . $.Values.smtp.passwordKey) }}
{{- end }}
{{ include "permisos.secretEnv" (list "PERMISOS_API_STRIPE_SECRET_KEY" .Values.stripe.existingSecret .Values.stripe.secretKeyKey) }}
{{ include "permisos.secretEnv" (list "PERMISOS_API_STRIPE_WEBHOOK_SECRET" .Values.stripe.existingSecret .Values.stripe.webhookSecretKey) }}
{{- with include "permisos.stripeApiBase" . }}
- name: PERMISOS_API_STRIPE_API_BASE
  value: {{ . | quote }}
{{- end }}
{{- with .Values.stripe.publishableKey }}
- name: PERMISOS_API_STRIPE_PUBLISHABLE_KEY
  value: {{ . | quote }}
{{- end }}
- name: PERMISOS_API_STRIPE_JS_URL
  value: {{ .Values.stripe.jsUrl | quote }}
- name: PERMISOS_API_KUBERNETES_NAMESPACE
  value: {{ .Release.Namespace | quote }}
- name: PERMISOS_API_PERMIT_POOL
  value: {{ .Values.api.permitPool | quote }}
- name: PERMISOS_API_S3_BUCKET
  value: {{ .Values.s3.bucket | quote }}
- name: PERMISOS_API_S3_REGION
  value: {{ .Values.s3.region | quote }}
{{- with .Values.s3.endpointUrl }}
- name: PERMISOS_API_S3_ENDPOINT_URL
  value: {{ . | quote }}
{{- end }}
{{- include "permisos.s3CredentialsEnv" . }}
{{- range .Values.api.extraEnv }}
- name: {{ .name }}
  value: {{ .value | quote }}
{{- end }}
{{- end -}}

{{/* Writable places of an API-image pod (the root filesystem is read-only). */}}
{{- define "permisos.api.volumeMounts" -}}
- name: tmp
  mountPath: /tmp
- name: mail
  mountPath: /var/lib/permisos/mail
{{- end -}}

{{- define "permisos.api.volumes" -}}
- name: tmp
  emptyDir:
    sizeLimit: 64Mi
- name: mail
  emptyDir:
    sizeLimit: 64Mi
{{- end -}}

{{/* An egress rule to an external endpoint of networkPolicy (its `to` peers on its `ports`). */}}
{{- define "permisos.egressTo" -}}
- ports:
    {{- toYaml .ports | nindent 4 }}
  {{- with .to }}
  to:
    {{- toYaml . | nindent 4 }}
  {{- end -}}
{{- end -}}

{{/* A NetworkPolicy peer: this release's pods of one component. */}}
{{- define "permisos.podPeer" -}}
- podSelector:
    matchLabels:
      {{- include "permisos.selectorLabels" . | nindent 6 }}
{{- end -}}

{{/* The operator's work rules (operator/permisos_operator/rbac.py WORK). */}}
{{- define "permisos.operator.workRules" -}}
# Kopf watches requests; the operator writes their status only.
- apiGroups: ["permisosdigitales.mx"]
  resources: ["permitrequests"]
  verbs: ["list", "watch"]
- apiGroups: ["permisosdigitales.mx"]
  resources: ["permitrequests/status"]
  verbs: ["patch"]
# Pools are watched, Kopf's finalizer patched on (their daemons), their status written
# (runnerpools/scale is for kubectl and HPAs).
- apiGroups: ["permisosdigitales.mx"]
  resources: ["runnerpools"]
  verbs: ["list", "watch", "patch"]
- apiGroups: ["permisosdigitales.mx"]
  resources: ["runnerpools/status"]
  verbs: ["patch"]
# One Job per attempt; cancelled and never-started attempts' Jobs are deleted.
- apiGroups: ["batch"]
  resources: ["jobs"]
  verbs: ["list", "watch", "create", "delete"]
# Runner pods are only read (states, termination messages).
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list", "watch"]
# One Event per transition, posted by Kopf.
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create"]
{{- end -}}

{{/*
What the API's Ingress publishes by default: the JSON API and the web pages (permisos_api.web,
one entry per page's first path segment; tests/chart/test_render.py checks the list against the
app's routes). The rest of the API's port (/metrics, /healthz, /readyz, /docs) is not published.
*/}}
{{- define "permisos.publicPaths" -}}
- {path: /v1, pathType: Prefix}
- {path: /, pathType: Exact}
- {path: /static, pathType: Prefix}
- {path: /registro, pathType: Prefix}
- {path: /verificar, pathType: Prefix}
- {path: /entrar, pathType: Prefix}
- {path: /salir, pathType: Prefix}
- {path: /recuperar, pathType: Prefix}
- {path: /restablecer, pathType: Prefix}
- {path: /solicitudes, pathType: Prefix}
- {path: /cuenta, pathType: Prefix}
- {path: /admin, pathType: Prefix}
{{- end }}
