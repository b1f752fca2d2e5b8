package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/kafkagate/kafkagate/internal/core"
	"github.com/kafkagate/kafkagate/internal/fpe/vaultkeyring"
)

func newRotateFPE(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "rotate-fpe DOMAIN",
		Short: "Create the next FPE key version of a domain (new records use it; older versions keep decrypting)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, vc, err := g.configAndVault()
			if err != nil {
				return err
			}
			defer vc.Close()
			v, err := vaultkeyring.New(vc, core.KeyringOptions(cfg)).Rotate(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "rotated fpe domain %s: current version is now %d (gateways pick it up at their next refresh)\n", args[0], v)
			return nil
		},
	}
}
