package main

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/kafkagate/kafkagate/internal/core"
	"github.com/kafkagate/kafkagate/internal/kafka"
	"github.com/kafkagate/kafkagate/internal/lifecycle"
)

func newProvision(g *globals) *cobra.Command {
	var (
		dryRun, noKafka, asJSON, failOnDrift bool
		credDir, dlqSuffix                   string
		partitions                           int32
		replication                          int16
		tokenTTL, tokenMaxTTL                time.Duration
	)
	cmd := &cobra.Command{
		Use:   "provision",
		Short: "Set up, idempotently, the Vault keys, policies, AppRole roles and Kafka topics the policies need",
		Long: `provision reads the [policy:<topic>] sections and sets up what they need, creating only
what is missing: the transit mount, the topics' transit keys (envelope KEKs derived), the FPE
KEK and version 1 of each FPE domain, per topic three Vault policies and AppRole roles
(kafkagate-<topic>-producer: encrypt, never decrypt; -consumer: decrypt; -admin: both plus
key read, rotate, config and rewrap) with their role id and secret id written to
--credentials-dir (files mode 0600), and the Kafka topics with their dead-letter topics.
With a [kubernetes] section (namespace, service_account, mount) it also creates one
Kubernetes auth role per Vault policy, bound to that service account (VAULT_K8S_ROLE).

Anything that exists is left alone: when it differs from what the policies want it is
reported as drift. --dry-run prints the plan and changes nothing. Needs an administrative
Vault token (VAULT_TOKEN or another VAULT_* login).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, cfg, err := g.loggerAndConfig(os.Stderr)
			if err != nil {
				return err
			}
			vc, err := g.vaultClient()
			if err != nil {
				return err
			}
			defer vc.Close()
			o := lifecycle.ProvisionOptions{
				Policies: cfg.Policies, TransitMount: cfg.Get("kafkagate", "transit_mount", "transit"),
				FPE: core.KeyringOptions(cfg), CredentialsDir: credDir, DLQSuffix: dlqSuffix,
				Partitions: partitions, ReplicationFactor: replication,
				TokenTTL: tokenTTL, TokenMaxTTL: tokenMaxTTL, DryRun: dryRun,
			}
			if o.Kubernetes, err = lifecycle.KubernetesFromConfig(cfg); err != nil {
				return err
			}
			if !noKafka {
				props := map[string]string{}
				for k, v := range cfg.Section("default") {
					props[k] = v
				}
				if b := g.brokerList(); len(b) > 0 {
					props["bootstrap.servers"] = strings.Join(b, ",")
				}
				ks, err := kafka.Configure(props, log)
				if err != nil {
					return err
				}
				kc, err := kafka.Dial(ks)
				if err != nil {
					return err
				}
				defer kc.Close()
				o.Kafka = kc
			}
			rep, err := lifecycle.Provision(cmd.Context(), vc, o)
			if rep != nil {
				var werr error
				if asJSON {
					werr = writeJSON(cmd.OutOrStdout(), rep)
				} else {
					werr = rep.WriteTable(cmd.OutOrStdout())
				}
				if err == nil {
					err = werr
				}
			}
			if err != nil {
				return err
			}
			if n := rep.Count(lifecycle.StatusDrift); failOnDrift && n > 0 {
				return fmt.Errorf("%d item(s) drifted from the policies (listed above)", n)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "print the plan, change nothing")
	cmd.Flags().StringVar(&credDir, "credentials-dir", "", "write AppRole credentials here (mode 0600); empty: create no AppRole roles")
	cmd.Flags().BoolVar(&noKafka, "no-kafka", false, "do not create Kafka topics")
	cmd.Flags().StringVar(&dlqSuffix, "dlq-suffix", ".dlq", "dead-letter topic of <topic>: <topic><suffix>")
	cmd.Flags().Int32Var(&partitions, "partitions", 3, "partitions of new topics")
	cmd.Flags().Int16Var(&replication, "replication-factor", 1, "replication factor of new topics")
	cmd.Flags().DurationVar(&tokenTTL, "token-ttl", time.Hour, "TTL of the tokens of the AppRole (and Kubernetes) roles")
	cmd.Flags().DurationVar(&tokenMaxTTL, "token-max-ttl", 24*time.Hour, "maximum TTL of the tokens of the AppRole (and Kubernetes) roles")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the report as JSON")
	cmd.Flags().BoolVar(&failOnDrift, "fail-on-drift", false, "exit 1 when anything drifted")
	return cmd
}
