package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/kafkagate/kafkagate/fpe"
	"github.com/kafkagate/kafkagate/gateway"
	"github.com/kafkagate/kafkagate/vaultclient"
)

func newRotateFPE(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "rotate-fpe DOMAIN",
		Short: "Create the next FPE key version of a domain (new records use it; older versions keep decrypting)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
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
			vc, err := vaultclient.New(vcfg)
			if err != nil {
				return err
			}
			v, err := fpe.NewKeyring(vc, gateway.KeyringOptions(cfg)).Rotate(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "rotated fpe domain %s: current version is now %d (gateways pick it up at their next refresh)\n", args[0], v)
			return nil
		},
	}
}
