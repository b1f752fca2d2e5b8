package main

// gateway consume: the decrypting consumer, with options for records it
// cannot decrypt (print them raw, bound each decryption's wait) and for
// records kafkagate did not write (refuse them).

import (
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/kafkagate/kafkagate/internal/consume"
	"github.com/kafkagate/kafkagate/internal/core"

	"github.com/spf13/cobra"

	"github.com/kafkagate/kafkagate/internal/kafka"
)

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
		treatRaw  bool
		maxWait   time.Duration
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
printed, and the command exits 1 at the end.

--treat-undecryptable-as-plaintext prints a record that cannot be decrypted with status
raw and its stored bytes verbatim (base64, type BINARY) instead of status failed: what
Kafka holds, never decrypted plaintext. --max-wait-per-decrypt bounds the wait for each
record's decryption: a record that overruns it is printed with status timeout and its
stored value, never dropped. Without it, Vault being unavailable ends the command with an
error (fail closed).`,
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
			if maxWait < 0 {
				return fmt.Errorf("--max-wait-per-decrypt %v: want a positive duration", maxWait)
			}
			if format != "json" && format != "raw" {
				return fmt.Errorf("--format %q: want json or raw", format)
			}
			log, cfg, err := g.loggerAndConfig(os.Stderr)
			if err != nil {
				return err
			}
			gw, err := core.Open(g.coreOptions(log, cfg))
			if err != nil {
				return err
			}
			defer gw.Close()
			out := json.NewEncoder(cmd.OutOrStdout())
			out.SetEscapeHTML(false)
			o := consume.Options{Topic: topic, Partition: partition, Offset: offset, Max: max, Group: group, FromBeginning: fromStart,
				TreatUndecryptableAsPlaintext: treatRaw, MaxWaitPerDecrypt: maxWait}
			if offset < 0 {
				o.Offset = kafka.OffsetOldest
			}
			refused := 0
			n, err := consume.Run(cmd.Context(), gw.Kafka, gw.Engine, o, func(r consume.Line) error {
				if requireEn && consume.RequireEncryptedRefuses(r) {
					refused++
					fmt.Fprintf(cmd.ErrOrStderr(), "refused: record %s/%d@%d is not encrypted under the topic's policy (status %s%s)\n", r.Topic, r.PartitionID, r.Offset, r.Decryption.Status, codeSuffix(r.Decryption.Code))
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
				err = fmt.Errorf("%d record(s) not encrypted under the topic's policy refused (--require-encrypted)", refused)
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
	cmd.Flags().BoolVar(&treatRaw, "treat-undecryptable-as-plaintext", false, "print undecryptable records with status raw and their stored bytes verbatim, instead of status failed")
	cmd.Flags().DurationVar(&maxWait, "max-wait-per-decrypt", 0, "longest wait for one record's decryption; a record that overruns it is printed with status timeout (0: no limit)")
	return cmd
}

func codeSuffix(code string) string {
	if code == "" {
		return ""
	}
	return ", " + code
}
