package main

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/IBM/sarama"
	"github.com/spf13/cobra"

	"github.com/kafkagate/kafkagate"
	"github.com/kafkagate/kafkagate/config"
	"github.com/kafkagate/kafkagate/gateway"
	"github.com/kafkagate/kafkagate/protect"
	"github.com/kafkagate/kafkagate/vaultclient"
)

type globals struct {
	configPath string
	logLevel   string
	brokers    string
}

func newRoot() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:           "gateway",
		Short:         "kafkagate: keep Kafka data encrypted with keys held in HashiCorp Vault",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVar(&g.configPath, "config", "", "configuration file (getting_started.ini format); default: the embedded getting_started.ini.orig")
	root.PersistentFlags().StringVar(&g.configPath, "config_file", "", "alias of --config, as in the original demo")
	root.PersistentFlags().StringVar(&g.logLevel, "log-level", "info", "debug, info, warn or error")
	root.PersistentFlags().StringVar(&g.brokers, "brokers", "", "Kafka bootstrap servers, overriding bootstrap.servers")
	root.AddCommand(newServe(g), newDev(g), newConsume(g), newKeys(g), newToken())
	root.AddCommand(newBridge(g))
	root.AddCommand(newFileCommands(g)...)
	root.AddCommand(newDemo(g))
	root.AddCommand(newRewrap(g), newProvision(g))
	return root
}

func (g *globals) logger(w io.Writer) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(g.logLevel)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", g.logLevel)
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: lvl})), nil
}

func (g *globals) config() (*config.File, error) {
	if g.configPath == "" {
		return config.Parse(kafkagate.DefaultConfig)
	}
	return config.Load(g.configPath)
}

func (g *globals) brokerList() []string {
	if g.brokers == "" {
		return nil
	}
	return strings.Split(g.brokers, ",")
}

func newServe(g *globals) *cobra.Command {
	var listen, pprofAddr string
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the HTTP gateway (Vault from VAULT_* environment, Kafka from the config file)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := g.logger(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			cfg, err := g.config()
			if err != nil {
				return err
			}
			if listen == "" {
				listen = cfg.Get("kafkagate", "listen", "127.0.0.1:8080")
			}
			_, tlsCfg, err := serveSettings(cfg, listen)
			if err != nil {
				return err
			}
			vcfg := vaultclient.FromEnv()
			vcfg.Logger = log
			gw, err := gateway.New(gateway.Options{Config: cfg, Vault: vcfg, Logger: log, Brokers: g.brokerList()})
			if err != nil {
				return err
			}
			defer gw.Close()
			if pprofAddr != "" {
				stop, err := gateway.ServePprof(cmd.Context(), pprofAddr, log)
				if err != nil {
					return err
				}
				defer stop()
			}
			l, err := openServeListener(gw, listen, tlsCfg, log)
			if err != nil {
				return err
			}
			log.Info("kafkagate serving", "listen", l.Addr().String(), "tls", tlsCfg != nil, "vault", vcfg.Addr, "topics_with_policy", strings.Join(cfg.Policies.Topics(), ","))
			return gw.Serve(cmd.Context(), l)
		},
	}
	cmd.Flags().StringVar(&listen, "listen", "", "HTTP listen address (default: [kafkagate] listen, else 127.0.0.1:8080); beyond loopback only with [kafkagate] access_file")
	cmd.Flags().StringVar(&pprofAddr, "pprof", "", "serve Go profiles (net/http/pprof) on this loopback address, e.g. 127.0.0.1:6060")
	return cmd
}

func newConsume(g *globals) *cobra.Command {
	var (
		topic     string
		partition int32
		offset    int64
		max       int
		format    string
		group     string
		fromStart bool
		requireEn bool
	)
	cmd := &cobra.Command{
		Use:   "consume",
		Short: "Print a topic's records decrypted, one JSON line each: up to the current end, or following as a consumer group (--group)",
		Long: `consume prints a topic's records decrypted, one JSON line each, with a per-record status:
decrypted, partial, failed, or unencrypted (a record kafkagate did not write, printed as
stored and never passed off as decrypted).

Without --group it reads every partition (or --partition) from --offset up to the
current end and exits, committing nothing. With --group it consumes as that consumer
group: it follows new records until Ctrl-C or --max, commits the offsets of the records
it printed, and a group with no committed offsets starts at the newest record unless
--from-beginning is given.

--require-encrypted refuses unencrypted records: each is reported on stderr instead of
printed, and the command exits 1 at the end.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if topic == "" {
				return fmt.Errorf("--topic is required")
			}
			if group != "" && (cmd.Flags().Changed("partition") || cmd.Flags().Changed("offset")) {
				return fmt.Errorf("--partition and --offset are for reads without --group (a group resumes from its committed offsets)")
			}
			if fromStart && group == "" {
				return fmt.Errorf("--from-beginning needs --group (reads without a group start at --offset)")
			}
			if format != "json" && format != "raw" {
				return fmt.Errorf("--format %q: want json or raw", format)
			}
			log, err := g.logger(os.Stderr)
			if err != nil {
				return err
			}
			cfg, err := g.config()
			if err != nil {
				return err
			}
			vcfg := vaultclient.FromEnv()
			vcfg.Logger = log
			gw, err := gateway.New(gateway.Options{Config: cfg, Vault: vcfg, Logger: log, Brokers: g.brokerList()})
			if err != nil {
				return err
			}
			defer gw.Close()
			out := json.NewEncoder(cmd.OutOrStdout())
			out.SetEscapeHTML(false)
			o := gateway.ConsumeOptions{Topic: topic, Partition: partition, Offset: offset, Max: max, Group: group, FromBeginning: fromStart}
			if offset < 0 {
				o.Offset = sarama.OffsetOldest
			}
			refused := 0
			n, err := gw.Consume(cmd.Context(), o, func(r gateway.ConsumedRecord) error {
				if requireEn && r.Decryption.Status == string(protect.StatusUnencrypted) {
					refused++
					fmt.Fprintf(cmd.ErrOrStderr(), "refused: record %s/%d@%d has status unencrypted (not written by kafkagate)\n", r.Topic, r.PartitionID, r.Offset)
					return nil
				}
				if format == "raw" {
					var v any = nil
					if r.Value != nil {
						v = r.Value.Data
					}
					return out.Encode(map[string]any{"offset": r.Offset, "partition": r.PartitionID, "status": r.Decryption.Status, "value": v})
				}
				return out.Encode(r)
			})
			log.Debug("consume finished", "records", n, "refused", refused)
			if err == nil && refused > 0 {
				err = fmt.Errorf("%d unencrypted record(s) refused (--require-encrypted)", refused)
			}
			return err
		},
	}
	cmd.Flags().StringVar(&topic, "topic", "", "topic to read (required)")
	cmd.Flags().Int32Var(&partition, "partition", -1, "partition (default: all)")
	cmd.Flags().Int64Var(&offset, "offset", -2, "first offset (default: the beginning)")
	cmd.Flags().IntVar(&max, "max", 0, "stop after this many records (0: all up to the current end; with --group: until Ctrl-C)")
	cmd.Flags().StringVar(&format, "format", "json", "json (record, headers and per-field status) or raw (value and status)")
	cmd.Flags().StringVar(&group, "group", "", "consume as this consumer group: follow new records until Ctrl-C or --max, committing offsets")
	cmd.Flags().BoolVar(&fromStart, "from-beginning", false, "with --group: a group without committed offsets starts at the oldest record (default: the newest)")
	cmd.Flags().BoolVar(&requireEn, "require-encrypted", false, "refuse records that are unencrypted: report each on stderr and exit 1 at the end")
	return cmd
}
