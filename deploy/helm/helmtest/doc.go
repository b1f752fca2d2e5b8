// Package helmtest checks the Helm chart in deploy/helm/kafkagate without a
// cluster: it renders the chart with the Helm Go SDK for the default values
// and for each values file in the chart's ci/ folder, decodes every
// rendered manifest strictly into its k8s.io/api type (an unknown or
// misspelt field fails), and checks what the deployment relies on: the
// probes on /healthz and /readyz, the containers' securityContext, the
// PodDisruptionBudget and HorizontalPodAutoscaler, a termination grace
// period longer than the drain delay, the Vault login environment, and that
// the ConfigMap's ini loads with config.Parse and asks `gateway provision`
// for the same Vault policies as the repository's default configuration.
package helmtest
