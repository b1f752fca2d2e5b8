package main

import (
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/spf13/cobra"

	"github.com/kafkagate/kafkagate"
	"github.com/kafkagate/kafkagate/internal/config"
	"github.com/kafkagate/kafkagate/internal/server"
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
	root.AddCommand(newServe(g), newDev(g), newProxyCmd(g), newConsume(g), newKeys(g), newToken())
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

// loggerAndConfig is the logger (to w, at --log-level) and the
// configuration (--config, or the embedded default) most commands start
// with.
func (g *globals) loggerAndConfig(w io.Writer) (*slog.Logger, *config.File, error) {
	log, err := g.logger(w)
	if err != nil {
		return nil, nil, err
	}
	cfg, err := g.config()
	if err != nil {
		return nil, nil, err
	}
	return log, cfg, nil
}

func (g *globals) brokerList() []string {
	if g.brokers == "" {
		return nil
	}
	return strings.Split(g.brokers, ",")
}

func newServe(g *globals) *cobra.Command {
	var listen, pprofAddr string
	var drain server.Drain
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the HTTP gateway (Vault from VAULT_* environment, Kafka from the config file)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, cfg, err := g.loggerAndConfig(cmd.ErrOrStderr())
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
			gw, err := server.New(g.coreOptions(log, cfg))
			if err != nil {
				return err
			}
			defer gw.Close()
			if pprofAddr != "" {
				stop, err := server.ServePprof(cmd.Context(), pprofAddr, log)
				if err != nil {
					return err
				}
				defer stop()
			}
			l, err := openServeListener(gw, listen, tlsCfg, log)
			if err != nil {
				return err
			}
			log.Info("kafkagate serving", "listen", l.Addr().String(), "tls", tlsCfg != nil, "vault", gw.Vault.Addr(), "topics_with_policy", strings.Join(cfg.Policies.Topics(), ","))
			return gw.ServeDrain(cmd.Context(), l, drainSettings(cmd, drain, gw.Settings))
		},
	}
	cmd.Flags().StringVar(&listen, "listen", "", "HTTP listen address (default: [kafkagate] listen, else 127.0.0.1:8080); beyond loopback only with [kafkagate] access_file")
	cmd.Flags().DurationVar(&drain.Delay, "drain-delay", server.DefaultDrainDelay, "on SIGTERM, /readyz answers 503 and the listener keeps serving this long before it closes ([kafkagate] drain_delay when not given)")
	cmd.Flags().DurationVar(&drain.Timeout, "drain-timeout", server.DefaultDrainTimeout, "then requests and streams in flight get this long; streams end at the deadline ([kafkagate] drain_timeout when not given)")
	cmd.Flags().StringVar(&pprofAddr, "pprof", "", "serve Go profiles (net/http/pprof) on this loopback address, e.g. 127.0.0.1:6060")
	return cmd
}

// drainSettings is the drain of serve: a flag given wins, then
// [kafkagate] drain_delay and drain_timeout, then the defaults.
func drainSettings(cmd *cobra.Command, flags server.Drain, set server.Settings) server.Drain {
	d := flags
	if !cmd.Flags().Changed("drain-delay") && set.DrainDelaySet {
		d.Delay = set.DrainDelay
	}
	if !cmd.Flags().Changed("drain-timeout") && set.DrainTimeoutSet {
		d.Timeout = set.DrainTimeout
	}
	return d
}
