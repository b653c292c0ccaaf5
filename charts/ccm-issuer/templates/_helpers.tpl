{{/*
Chart name, truncated to the 63 characters of a DNS label.
*/}}
{{- define "ccm-issuer.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name: fullnameOverride, else the release name if it already contains the chart name,
else "<release>-<chart>".
*/}}
{{- define "ccm-issuer.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "ccm-issuer.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels of every object.
*/}}
{{- define "ccm-issuer.labels" -}}
helm.sh/chart: {{ include "ccm-issuer.chart" . }}
{{ include "ccm-issuer.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: cert-manager
{{- end }}

{{/*
Labels that select the controller pods (never change them on upgrade: selectors are immutable).
*/}}
{{- define "ccm-issuer.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ccm-issuer.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
The controller's ServiceAccount.
*/}}
{{- define "ccm-issuer.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "ccm-issuer.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
Where CCMClusterIssuers keep their Secrets: clusterResourceNamespace or the release namespace.
*/}}
{{- define "ccm-issuer.clusterResourceNamespace" -}}
{{- default .Release.Namespace .Values.clusterResourceNamespace }}
{{- end }}

{{/*
"true" when leader election is on: asked for, or more than one replica.
*/}}
{{- define "ccm-issuer.leaderElection" -}}
{{- if or .Values.leaderElection.enabled (gt (int .Values.replicaCount) 1) }}true{{ end }}
{{- end }}

{{- define "ccm-issuer.leaderElectionId" -}}
{{- default (printf "%s-leader" (include "ccm-issuer.fullname" .)) .Values.leaderElection.id | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
"true" when a PodDisruptionBudget is wanted: asked for, or more than one replica.
*/}}
{{- define "ccm-issuer.pdb" -}}
{{- if or .Values.podDisruptionBudget.enabled (gt (int .Values.replicaCount) 1) }}true{{ end }}
{{- end }}

{{/*
Image reference: repository@digest when a digest is given, else repository:tag (tag defaults
to the chart's appVersion).
*/}}
{{- define "ccm-issuer.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
Namespaces where the controller may read Secrets (without secretsClusterWide): the cluster
resource namespace plus rbac.secretNamespaces, without duplicates, in a stable order.
*/}}
{{- define "ccm-issuer.secretNamespaces" -}}
{{- $all := list (include "ccm-issuer.clusterResourceNamespace" .) }}
{{- range .Values.rbac.secretNamespaces }}
{{- $all = append $all . }}
{{- end }}
{{- toJson (uniq $all) }}
{{- end }}

{{/*
Path of the mounted CA bundle, empty when none is configured.
*/}}
{{- define "ccm-issuer.caBundlePath" -}}
{{- if or .Values.caBundle.secretName .Values.caBundle.configMapName }}
{{- printf "/etc/ccm-issuer/ca-bundle/%s" .Values.caBundle.key }}
{{- end }}
{{- end }}

{{/*
The controller's command line (after the image's ENTRYPOINT /ccm-issuer), as a JSON list.
Every flag the chart sets comes from a value; extraArgs may not repeat one (the controller
rejects a repeated flag), which is checked here with a message naming the value to use.
*/}}
{{- define "ccm-issuer.args" -}}
{{- $c := .Values.controller }}
{{- $args := list "controller" }}
{{- $managed := dict }}
{{- $args = append $args (printf "--cluster-resource-namespace=%s" (include "ccm-issuer.clusterResourceNamespace" .)) }}
{{- $_ := set $managed "--cluster-resource-namespace" "clusterResourceNamespace" }}
{{- if include "ccm-issuer.leaderElection" . }}
{{- $args = append $args "--leader-elect" }}
{{- $args = append $args (printf "--leader-election-namespace=%s" .Release.Namespace) }}
{{- $args = append $args (printf "--leader-election-id=%s" (include "ccm-issuer.leaderElectionId" .)) }}
{{- end }}
{{- $_ := set $managed "--leader-elect" "leaderElection.enabled or replicaCount" }}
{{- $_ := set $managed "--leader-election-namespace" "the release namespace (fixed)" }}
{{- $_ := set $managed "--leader-election-id" "leaderElection.id" }}
{{- $args = append $args (printf "--max-concurrent-reconciles=%d" (int $c.maxConcurrentReconciles)) }}
{{- $_ := set $managed "--max-concurrent-reconciles" "controller.maxConcurrentReconciles" }}
{{- $args = append $args (printf "--max-concurrent-per-issuer=%d" (int $c.maxConcurrentPerIssuer)) }}
{{- $_ := set $managed "--max-concurrent-per-issuer" "controller.maxConcurrentPerIssuer" }}
{{- range $c.namespacedIssuerEndpoints }}
{{- $args = append $args (printf "--namespaced-issuer-endpoint=%s" .) }}
{{- end }}
{{- $_ := set $managed "--namespaced-issuer-endpoint" "controller.namespacedIssuerEndpoints" }}
{{- if $c.allowInsecureEndpoints }}
{{- $args = append $args "--allow-insecure-endpoints" }}
{{- end }}
{{- $_ := set $managed "--allow-insecure-endpoints" "controller.allowInsecureEndpoints" }}
{{- $args = append $args (printf "--pca-qps=%v" $c.pcaQPS) }}
{{- $_ := set $managed "--pca-qps" "controller.pcaQPS" }}
{{- $args = append $args (printf "--pca-burst=%d" (int $c.pcaBurst)) }}
{{- $_ := set $managed "--pca-burst" "controller.pcaBurst" }}
{{- $args = append $args (printf "--pca-timeout=%s" $c.pcaTimeout) }}
{{- $_ := set $managed "--pca-timeout" "controller.pcaTimeout" }}
{{- $args = append $args (printf "--max-retry-duration=%s" $c.maxRetryDuration) }}
{{- $_ := set $managed "--max-retry-duration" "controller.maxRetryDuration" }}
{{- $args = append $args (printf "--issuer-recheck-interval=%s" $c.issuerRecheckInterval) }}
{{- $_ := set $managed "--issuer-recheck-interval" "controller.issuerRecheckInterval" }}
{{- range $region := keys $c.pcaEndpoints | sortAlpha }}
{{- $args = append $args (printf "--pca-endpoint=%s=%s" $region (get $c.pcaEndpoints $region)) }}
{{- end }}
{{- with $c.iamEndpoint }}
{{- $args = append $args (printf "--iam-endpoint=%s" .) }}
{{- end }}
{{- $_ := set $managed "--iam-endpoint" "controller.iamEndpoint" }}
{{- with $c.stsEndpoint }}
{{- $args = append $args (printf "--sts-endpoint=%s" .) }}
{{- end }}
{{- $_ := set $managed "--sts-endpoint" "controller.stsEndpoint" }}
{{- with include "ccm-issuer.caBundlePath" . }}
{{- $args = append $args (printf "--ca-bundle=%s" .) }}
{{- $_ := set $managed "--ca-bundle" "caBundle" }}
{{- end }}
{{- $args = append $args (printf "--health-bind-address=0.0.0.0:%d" (int .Values.healthPort)) }}
{{- $_ := set $managed "--health-bind-address" "healthPort" }}
{{- $args = append $args (printf "--log-format=%s" $c.logFormat) }}
{{- $_ := set $managed "--log-format" "controller.logFormat" }}
{{- range .Values.extraArgs }}
{{- $flag := regexReplaceAll "=.*$" . "" }}
{{- if hasKey $managed $flag }}
{{- fail (printf "extraArgs: %s is set by the chart; use the value %s instead" $flag (get $managed $flag)) }}
{{- end }}
{{- $args = append $args . }}
{{- end }}
{{- toJson $args }}
{{- end }}
