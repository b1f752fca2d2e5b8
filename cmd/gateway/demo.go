package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/kafkagate/kafkagate/demo"
	"github.com/kafkagate/kafkagate/internal/server"
)

// newDemo is `gateway demo`, what `make demo` runs: the dev stack, the
// original demo's three demos with what the broker's operator sees next
// to what the consumer gets, a key rotation, kcat through the Kafka proxy,
// then the gateway, the proxy, the encryptor and the live viewer keep
// serving until Ctrl-C.
func newDemo(g *globals) *cobra.Command {
	var (
		listen, vaultAddr, kafkaAddr, workDir string
		proxyAddr                             string
		count                                 int
		sleep                                 time.Duration
		exit                                  bool
	)
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run the original demo's three demos on a self-contained stack, then keep the gateway and its viewer serving",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if f := cmd.Flag("log-level"); f != nil && !f.Changed {
				g.logLevel = "warn" // the demo's own output is the point; --log-level info shows the components' logs
			}
			ctx := cmd.Context()
			if proxyAddr != "" {
				if err := server.CheckExposure(proxyAddr, false); err != nil {
					return fmt.Errorf("--proxy-addr: %w", err)
				}
			}
			d, l, err := startDevOn(ctx, vaultAddr, kafkaAddr, listen, g)
			if err != nil {
				return err
			}
			defer d.Close()
			log, err := g.logger(cmd.ErrOrStderr()) // --log-level was checked by startDev
			if err != nil {
				return err
			}
			cfg := d.GW.Config
			sctx, stopServe := context.WithCancel(ctx)
			served := make(chan error, 1)
			go func() { served <- d.GW.Serve(sctx, l) }() // ends with Ctrl-C, or when the demo returns
			waited := false
			defer func() {
				stopServe()
				if !waited {
					<-served
				}
			}()
			var px *runningProxy
			if proxyAddr != "" {
				if px, err = startProxy(sctx, d.GW, server.ProxyOptions{Addr: proxyAddr}); err != nil {
					return fmt.Errorf("kafka proxy: %w", err)
				}
				defer func() {
					stopServe()
					_ = px.wait()
				}()
			}
			base := "http://" + l.Addr().String()
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "kafkagate demo: the original demo's three programs, on a self-contained stack\n")
			fmt.Fprintf(w, "  gateway  %s\n  viewer   %s/ui/\n  kafka    %s (embedded kfake)\n  vault    %s (dev server)\n",
				base, base, strings.Join(d.Brokers, ","), d.Vault.Addr)
			opts := demo.Options{Core: d.GW.Core, Count: count, Sleep: sleep, Out: w, Logger: log}
			if px != nil {
				fmt.Fprintf(w, "  proxy    %s (Kafka protocol: encrypts on produce, decrypts on fetch)\n", px.addr)
				opts.ProxyAddr = px.addr
			}
			fmt.Fprintf(w, "\n  export VAULT_ADDR=%s VAULT_TOKEN=%s\n", d.Vault.Addr, d.Vault.Token)
			if workDir == "" {
				if workDir, err = os.MkdirTemp("", "kafkagate-demo-"); err != nil {
					return fmt.Errorf("work directory: %w", err)
				}
				defer os.RemoveAll(workDir)
			}
			opts.WorkDir = workDir
			sc, err := demo.Run(ctx, opts)
			if err != nil {
				return err
			}
			defer sc.Close()
			dc := cfg.Get("encryptor", "targettopic", "purchases_encrypted")
			fmt.Fprintf(w, "\n=== Live ===================================================================\n")
			fmt.Fprintf(w, "Watch the encrypted topic, stored and decrypted side by side, and rotate its keys:\n  %s/ui/?topic=%s\n", base, dc)
			fmt.Fprintf(w, "The encryptor keeps running: records produced to %s are encrypted into %s.\n", cfg.Get("encryptor", "sourcetopic", "purchases"), dc)
			fmt.Fprintf(w, "Files of demo 3: %s\n", workDir)
			if px != nil {
				fmt.Fprintf(w, "Any Kafka client can use the proxy: kcat -b %s -t %s -C -e\n", px.addr, dc)
			}
			if exit {
				fmt.Fprintf(w, "--exit: stopping.\n")
				return nil
			}
			fmt.Fprintf(w, "Ctrl-C stops everything.\n")
			err = <-served
			waited = true
			return err
		},
	}
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:8080", "gateway HTTP address (API and viewer)")
	cmd.Flags().StringVar(&vaultAddr, "vault-addr", "127.0.0.1:8200", "Vault dev server listen address")
	cmd.Flags().StringVar(&kafkaAddr, "kafka-addr", "127.0.0.1:9092", "embedded Kafka broker address")
	cmd.Flags().IntVar(&count, "count", 5, "purchases written by demo 1")
	cmd.Flags().DurationVar(&sleep, "sleep", 200*time.Millisecond, "pause between two purchases")
	cmd.Flags().StringVar(&workDir, "workdir", "", "directory for demo 3's source and destination files (default: a temporary one, removed at exit)")
	cmd.Flags().StringVar(&proxyAddr, "proxy-addr", "127.0.0.1:9192", "Kafka proxy bootstrap address (loopback; empty disables the proxy and its step)")
	cmd.Flags().BoolVar(&exit, "exit", false, "stop after the demos instead of serving until Ctrl-C")
	return cmd
}
