package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/kafkagate/kafkagate/internal/lifecycle"
)

func newRewrap(g *globals) *cobra.Command {
	var (
		from, to, statePath string
		dlq                 string
		batch               int
		asJSON              bool
	)
	cmd := &cobra.Command{
		Use:   "rewrap --topic T --to T2",
		Short: "Copy a topic to another with every record moved to the latest key versions, then verify the counts",
		Long: `rewrap copies every record of --topic to --to, moved to the latest key versions:
transit fields through transit/rewrap (or decrypted and encrypted again for the target
topic when they are bound to their topic), envelope records by rewrapping only the data
key in their header (the payload is copied byte for byte; the target policy must list
the source in rewrapped_from), FPE fields re-tokenised from their version to the
domain's current one. Plaintext never leaves the process.

With --state FILE the run saves its position after each batch and resumes from it when
started again. At the end it checks that the target gained exactly the records written
and that every record read was written or reported; records it could not rewrap are
listed, written to the dead-letter topic (--dlq, default <to>.dlq when it exists) with
kafkagate.dlq.code/.reason/.source headers, and the command exits 1.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if from == "" || to == "" {
				return fmt.Errorf("--topic and --to are required")
			}
			o := lifecycle.RewrapOptions{From: from, To: to, Batch: batch}
			if statePath != "" {
				st, err := loadRewrapState(statePath)
				if err != nil {
					return err
				}
				o.Resume = st
				o.Checkpoint = func(s lifecycle.State) error { return saveRewrapState(statePath, s) }
			}
			gw, err := g.core()
			if err != nil {
				return err
			}
			defer gw.Close()
			if p, ok := gw.Config.Policies.For(to); ok {
				o.Target = p
			}
			switch dlq {
			case "none":
			case "":
				if _, err := gw.Kafka.Partitions(to + ".dlq"); err == nil {
					o.DLQ = to + ".dlq"
				}
			default:
				o.DLQ = dlq
			}
			rep, err := lifecycle.Rewrap(cmd.Context(), gw.Kafka, gw.Engine, o)
			if rep != nil {
				if asJSON {
					if jerr := writeJSON(cmd.OutOrStdout(), rep); jerr != nil {
						return jerr
					}
				} else {
					w := cmd.OutOrStdout()
					fmt.Fprintf(w, "rewrap %s -> %s: read %d, written %d, failed %d; target grew by %d; verified %t\n", from, to, rep.Read, rep.Written, rep.Failed, rep.TargetGrowth, rep.Verified)
					if rep.Failed > 0 {
						fmt.Fprintf(w, "  dead-lettered %d of the %d failed records to %q\n", rep.DeadLettered, rep.Failed, o.DLQ)
					}
					for v, n := range rep.Versions {
						fmt.Fprintf(w, "  %s: %d records\n", v, n)
					}
					for _, f := range rep.Failures {
						where := "not dead-lettered"
						if f.DeadLettered {
							where = "dead-lettered to " + o.DLQ
						}
						fmt.Fprintf(w, "  not rewrapped: %s/%d@%d: %s: %s (%s)\n", from, f.Partition, f.Offset, f.Code, f.Error, where)
					}
				}
			}
			if err != nil {
				return err
			}
			if rep.Failed > 0 {
				return fmt.Errorf("%d record(s) could not be rewrapped (listed above)", rep.Failed)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&from, "topic", "", "source topic (required)")
	cmd.Flags().StringVar(&to, "to", "", "target topic (required; should receive no other writes during the run)")
	cmd.Flags().StringVar(&statePath, "state", "", "save progress here after each batch and resume from it")
	cmd.Flags().IntVar(&batch, "batch", 500, "records per Vault round trip")
	cmd.Flags().StringVar(&dlq, "dlq", "", `topic for the records that cannot be rewrapped (default <to>.dlq when it exists; "none": report only)`)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the report as JSON")
	return cmd
}

func loadRewrapState(path string) (*lifecycle.State, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("--state: %w", err)
	}
	var st lifecycle.State
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("--state %s: %w", path, err)
	}
	return &st, nil
}

// saveRewrapState writes the state atomically (temporary file, rename).
func saveRewrapState(path string, st lifecycle.State) error {
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".rewrap-state-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
