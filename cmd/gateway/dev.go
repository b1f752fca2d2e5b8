package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/kafkagate/kafkagate/demo"
	"github.com/kafkagate/kafkagate/internal/config"
	"github.com/kafkagate/kafkagate/internal/devenv"
	"github.com/kafkagate/kafkagate/internal/server"
)

// devStack is a running development stack.
type devStack struct {
	Vault   *devenv.Vault
	Brokers []string
	GW      *server.Gateway
	close   []func()
}

func (d *devStack) Close() {
	for i := len(d.close) - 1; i >= 0; i-- {
		d.close[i]()
	}
}

// startDev starts Vault and the embedded broker, provisions the policies'
// keys, and assembles a gateway against them.
func startDev(ctx context.Context, cfg *config.File, vaultAddr, kafkaAddr string, vaultLog io.Writer, g *globals) (*devStack, error) {
	log, err := g.logger(os.Stderr)
	if err != nil {
		return nil, err
	}
	d := &devStack{}
	v, err := devenv.StartVault(ctx, devenv.VaultOptions{Addr: vaultAddr, Log: vaultLog})
	if err != nil {
		return nil, err
	}
	d.Vault = v
	d.close = append(d.close, func() { _ = v.Stop() })
	port := 0
	if kafkaAddr != "" {
		_, ps, ok := strings.Cut(kafkaAddr, ":")
		if p, perr := strconv.Atoi(ps); !ok || perr != nil || p <= 0 {
			d.Close()
			return nil, fmt.Errorf("--kafka-addr %q: want 127.0.0.1:PORT", kafkaAddr)
		} else {
			port = p
		}
	}
	kc, err := devenv.StartKafka(devenv.KafkaOptions{Port: port})
	if err != nil {
		d.Close()
		return nil, err
	}
	d.close = append(d.close, kc.Close)
	d.Brokers = kc.ListenAddrs()
	vc, err := v.Client()
	if err != nil {
		d.Close()
		return nil, err
	}
	if err := demo.Provision(ctx, vc, cfg); err != nil {
		d.Close()
		return nil, err
	}
	gw, err := server.New(server.Options{Config: cfg, Vault: vaultConfig(v), Logger: log, Brokers: d.Brokers})
	if err != nil {
		d.Close()
		return nil, err
	}
	d.GW = gw
	d.close = append(d.close, func() { _ = gw.Close() })
	return d, nil
}

// startDevOn loads the configuration, starts the dev stack on it
// (startDev) and listens on listen for the gateway; on error nothing is
// left running.
func startDevOn(ctx context.Context, vaultAddr, kafkaAddr, listen string, g *globals) (*devStack, net.Listener, error) {
	cfg, err := g.config()
	if err != nil {
		return nil, nil, err
	}
	d, err := startDev(ctx, cfg, vaultAddr, kafkaAddr, nil, g)
	if err != nil {
		return nil, nil, err
	}
	l, err := server.Listen(listen)
	if err != nil {
		d.Close()
		return nil, nil, err
	}
	return d, l, nil
}

func newDev(g *globals) *cobra.Command {
	var listen, vaultAddr, kafkaAddr, proxyAddr string
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run a self-contained stack: a Vault dev server, an embedded Kafka broker and the gateway",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.config()
			if err != nil {
				return err
			}
			// The same exposure check as serve, before anything starts.
			set, err := server.ReadSettings(cfg)
			if err != nil {
				return err
			}
			if err := server.CheckExposure(listen, set.AccessFile != ""); err != nil {
				return err
			}
			if proxyAddr != "" {
				if err := server.CheckExposure(proxyAddr, false); err != nil {
					return fmt.Errorf("--proxy-addr: %w", err)
				}
			}
			ctx, cancel := context.WithCancel(cmd.Context())
			defer cancel()
			d, l, err := startDevOn(ctx, vaultAddr, kafkaAddr, listen, g)
			if err != nil {
				return err
			}
			defer d.Close()
			base := "http://" + l.Addr().String()
			cid, err := d.GW.Kafka.ClusterID(ctx)
			if err != nil {
				return err
			}
			var px *runningProxy
			if proxyAddr != "" {
				if px, err = startProxy(ctx, d.GW, server.ProxyOptions{Addr: proxyAddr}); err != nil {
					return err
				}
				defer func() { cancel(); _ = px.wait() }()
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "kafkagate dev stack is up (Ctrl-C stops everything)\n")
			fmt.Fprintf(w, "  gateway  %s\n  kafka    %s (embedded kfake)\n  vault    %s (dev server)\n", base, strings.Join(d.Brokers, ","), d.Vault.Addr)
			if px != nil {
				fmt.Fprintf(w, "  proxy    %s (Kafka protocol: encrypts on produce, decrypts on fetch)\n", px.addr)
			}
			fmt.Fprintf(w, "\n  export VAULT_ADDR=%s VAULT_TOKEN=%s\n\n", d.Vault.Addr, d.Vault.Token)
			fmt.Fprintf(w, "Try:\n  curl -s -H 'Content-Type: application/json' -X POST %s/v3/clusters/%s/topics/purchases/records \\\n    -d '{\"value\":{\"type\":\"JSON\",\"data\":{\"Name\":\"Ann\",\"Address\":\"1 Main St\",\"credit_card\":\"2516-2848-6785-9087\"}}}'\n", base, cid)
			fmt.Fprintf(w, "  curl -s '%s/v3/clusters/%s/topics/purchases/records?partition=0&offset=0&max=10'\n", base, cid)
			fmt.Fprintf(w, "  kcat -b %s -t purchases -C -e -f '%%h %%s\\n'\n", d.Brokers[0])
			if px != nil {
				fmt.Fprintf(w, "  echo '{\"Name\":\"Ann\",\"Address\":\"1 Main St\",\"credit_card\":\"2516-2848-6785-9087\"}' | kcat -b %s -t purchases -P\n", px.addr)
				fmt.Fprintf(w, "  kcat -b %s -t purchases -C -e\n", px.addr)
			}
			return d.GW.Serve(ctx, l)
		},
	}
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:8080", "gateway HTTP address; beyond loopback only with [kafkagate] access_file, as for serve")
	cmd.Flags().StringVar(&vaultAddr, "vault-addr", "127.0.0.1:8200", "Vault dev server listen address")
	cmd.Flags().StringVar(&kafkaAddr, "kafka-addr", "127.0.0.1:9092", "embedded Kafka broker address")
	cmd.Flags().StringVar(&proxyAddr, "proxy-addr", "127.0.0.1:9192", "Kafka proxy bootstrap address (loopback; empty disables the proxy)")
	return cmd
}
