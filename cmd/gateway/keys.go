package main

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/kafkagate/kafkagate/internal/config"
	"github.com/kafkagate/kafkagate/internal/core"
	"github.com/kafkagate/kafkagate/internal/lifecycle"
	"github.com/kafkagate/kafkagate/internal/transit"
	"github.com/kafkagate/kafkagate/internal/vaultclient"
)

// envVault is the Vault configuration from VAULT_*, logging to log.
func envVault(log *slog.Logger) vaultclient.Config {
	vcfg := vaultclient.FromEnv()
	vcfg.Logger = log
	return vcfg
}

// vaultClient is a Vault client from VAULT_*; the caller closes it.
func (g *globals) vaultClient() (*vaultclient.Client, error) {
	log, err := g.logger(os.Stderr)
	if err != nil {
		return nil, err
	}
	return vaultclient.New(envVault(log))
}

// configAndVault is the configuration and a Vault client from VAULT_*;
// the caller closes the client.
func (g *globals) configAndVault() (*config.File, *vaultclient.Client, error) {
	cfg, err := g.config()
	if err != nil {
		return nil, nil, err
	}
	vc, err := g.vaultClient()
	return cfg, vc, err
}

// transitClient is a transit client from VAULT_* and the config's
// transit_mount. The caller closes the Vault client.
func (g *globals) transitClient() (*transit.Client, *vaultclient.Client, error) {
	cfg, vc, err := g.configAndVault()
	if err != nil {
		return nil, nil, err
	}
	return transit.New(vc, transit.Options{Mount: cfg.Get("kafkagate", "transit_mount", "transit")}), vc, nil
}

// core opens a core.Core (Vault from VAULT_*, Kafka from the config) for
// a one-shot command. The caller closes it.
func (g *globals) core() (*core.Core, error) {
	log, cfg, err := g.loggerAndConfig(os.Stderr)
	if err != nil {
		return nil, err
	}
	return core.Open(g.coreOptions(log, cfg))
}

// coreOptions are the options of a core.Core for cfg, Vault from VAULT_*.
func (g *globals) coreOptions(log *slog.Logger, cfg *config.File) core.Options {
	return core.Options{Config: cfg, Vault: envVault(log), Logger: log, Brokers: g.brokerList()}
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func newKeys(g *globals) *cobra.Command {
	keys := &cobra.Command{Use: "keys", Short: "List, inspect, configure and rotate the Vault keys the policies use; inventory a topic's key versions"}
	keys.AddCommand(newKeysList(g), newKeysShow(g), newKeysRotate(g), newKeysConfig(g), newKeysInventory(g), newRotateFPE(g))
	return keys
}

func newKeysList(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the transit keys the policies use, with versions, min decryption/encryption versions and auto-rotation period",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.config()
			if err != nil {
				return err
			}
			tc, vc, err := g.transitClient()
			if err != nil {
				return err
			}
			defer vc.Close()
			ks, err := lifecycle.ListKeys(cmd.Context(), tc, cfg.Policies)
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), ks)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "KEY\tPURPOSE\tTOPICS\tLATEST\tMIN_DECRYPT\tMIN_ENCRYPT\tAUTO_ROTATE")
			for _, k := range ks {
				if !k.Exists {
					fmt.Fprintf(tw, "%s\t%s\t%s\t(missing: run gateway provision)\t\t\t\n", k.Name, k.Purpose, strings.Join(k.Topics, ","))
					continue
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%s\n", k.Name, k.Purpose, strings.Join(k.Topics, ","), k.LatestVersion, k.MinDecryptionVersion, k.MinEncryptionVersion, k.AutoRotatePeriod)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newKeysShow(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "show KEY",
		Short: "Show a transit key's versions and configuration as JSON",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			tc, vc, err := g.transitClient()
			if err != nil {
				return err
			}
			defer vc.Close()
			ks, err := lifecycle.ShowKey(cmd.Context(), tc, args[0])
			if err != nil {
				return err
			}
			if !ks.Exists {
				return fmt.Errorf("transit key %q does not exist", args[0])
			}
			return writeJSON(cmd.OutOrStdout(), ks)
		},
	}
}

func newKeysRotate(g *globals) *cobra.Command {
	var topic string
	cmd := &cobra.Command{
		Use:   "rotate [KEY | --topic T]",
		Short: "Add a new version to a transit key, or to every key a topic's policy encrypts with (transit and FPE); new records use it, old ones still decrypt",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if (topic == "") == (len(args) == 0) {
				return fmt.Errorf("give either a KEY or --topic")
			}
			if topic != "" {
				gw, err := g.core()
				if err != nil {
					return err
				}
				defer gw.Close()
				rot, err := gw.RotateTopicKeys(cmd.Context(), topic)
				for _, r := range rot {
					name := r.Key
					if r.Kind == "fpe" {
						name = r.Domain
					}
					fmt.Fprintf(cmd.OutOrStdout(), "rotated %s %s: latest version is now %d\n", r.Kind, name, r.Version)
				}
				return err
			}
			tc, vc, err := g.transitClient()
			if err != nil {
				return err
			}
			defer vc.Close()
			v, err := tc.Rotate(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "rotated %s: latest version is now %d\n", args[0], v)
			return nil
		},
	}
	cmd.Flags().StringVar(&topic, "topic", "", "rotate every key this topic's policy encrypts new records with")
	return cmd
}

func newKeysConfig(g *globals) *cobra.Command {
	var (
		minDec, minEnc int
		period         time.Duration
	)
	cmd := &cobra.Command{
		Use:   "config KEY",
		Short: "Set a transit key's min_decryption_version, min_encryption_version or auto_rotate_period (check `keys inventory` before retiring versions)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var c lifecycle.KeyConfig
			if cmd.Flags().Changed("min-decryption-version") {
				c.MinDecryptionVersion = &minDec
			}
			if cmd.Flags().Changed("min-encryption-version") {
				c.MinEncryptionVersion = &minEnc
			}
			if cmd.Flags().Changed("auto-rotate-period") {
				c.AutoRotatePeriod = &period
			}
			tc, vc, err := g.transitClient()
			if err != nil {
				return err
			}
			defer vc.Close()
			ks, err := lifecycle.ConfigureKey(cmd.Context(), tc, args[0], c)
			if err != nil {
				return err
			}
			return writeJSON(cmd.OutOrStdout(), ks)
		},
	}
	cmd.Flags().IntVar(&minDec, "min-decryption-version", 0, "oldest version that still decrypts (older records become unreadable)")
	cmd.Flags().IntVar(&minEnc, "min-encryption-version", 0, "oldest version allowed to encrypt (0: the latest)")
	cmd.Flags().DurationVar(&period, "auto-rotate-period", 0, "rotate automatically this often (0: off; at least 1h)")
	return cmd
}

func newKeysInventory(g *globals) *cobra.Command {
	var (
		topic  string
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "inventory --topic T",
		Short: "Scan a topic and count its records per transit key version, FPE domain version and KEK version of wrapped data keys",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if topic == "" {
				return fmt.Errorf("--topic is required")
			}
			gw, err := g.core()
			if err != nil {
				return err
			}
			defer gw.Close()
			inv, err := lifecycle.TakeInventory(cmd.Context(), gw.Kafka, gw.Engine, topic, lifecycle.InventoryOptions{})
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), inv)
			}
			return inv.WriteTable(cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringVar(&topic, "topic", "", "topic to scan (required)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}
