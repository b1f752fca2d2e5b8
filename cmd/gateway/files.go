package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/kafkagate/kafkagate/internal/config"
	"github.com/kafkagate/kafkagate/internal/envelope"
	"github.com/kafkagate/kafkagate/internal/filetransfer"
	"github.com/kafkagate/kafkagate/internal/kafka"
	"github.com/kafkagate/kafkagate/internal/policy"
	"github.com/kafkagate/kafkagate/internal/transit"
	"github.com/kafkagate/kafkagate/internal/vaultclient"
)

// newFileCommands are the file transfer commands (docs/files.md).
func newFileCommands(g *globals) []*cobra.Command {
	return []*cobra.Command{newSendFile(g), newWatchDir(g), newReceiveDir(g), newRedrive(g)}
}

// fileEnv is what the file commands connect to.
type fileEnv struct {
	log      *slog.Logger
	cfg      *config.File
	settings *kafka.Settings
	kafka    *kafka.Client
	vault    *vaultclient.Client
	keys     *envelope.KMSKeys
}

func (e *fileEnv) Close() {
	if e.kafka != nil {
		_ = e.kafka.Close()
	}
	if e.vault != nil {
		_ = e.vault.Close() // stops token renewal; revokes a login token
	}
}

// openTopicEnv is openFileEnv for a command that needs --topic.
func openTopicEnv(g *globals, cmd *cobra.Command, topic string) (*fileEnv, error) {
	if topic == "" {
		return nil, errors.New("--topic is required")
	}
	return openFileEnv(g, cmd)
}

// openFileEnv loads the configuration, connects to Kafka ([default] of the
// configuration, --brokers) and prepares the Vault client (VAULT_*
// environment; Vault is not contacted until a key is needed).
func openFileEnv(g *globals, cmd *cobra.Command) (*fileEnv, error) {
	log, cfg, err := g.loggerAndConfig(cmd.ErrOrStderr())
	if err != nil {
		return nil, err
	}
	props := cfg.Section("default")
	if props == nil {
		props = map[string]string{}
	}
	if bl := g.brokerList(); len(bl) > 0 {
		props["bootstrap.servers"] = strings.Join(bl, ",")
	}
	settings, err := kafka.Configure(props, log)
	if err != nil {
		return nil, err
	}
	vc, err := vaultclient.New(envVault(log))
	if err != nil {
		return nil, err
	}
	kc, err := kafka.Dial(settings)
	if err != nil {
		_ = vc.Close()
		return nil, err
	}
	tc := transit.New(vc, transit.Options{Mount: cfg.Get("kafkagate", "transit_mount", "transit")})
	return &fileEnv{log: log, cfg: cfg, settings: settings, kafka: kc, vault: vc, keys: envelope.NewKMSKeys(tc)}, nil
}

// fileKEK returns the KEK for files sent to topic: its policy must exist
// and be in envelope mode (kafkagate refuses topics without a policy).
func fileKEK(cfg *config.File, topic string) (string, error) {
	p, ok := cfg.Policies.For(topic)
	if !ok {
		return "", fmt.Errorf("topic %s has no [policy:%s]: kafkagate refuses to write to it; add one with mode = envelope", topic, topic)
	}
	if p.Mode != policy.Envelope {
		return "", fmt.Errorf("topic %s: its policy has mode = %s; files need mode = envelope", topic, p.Mode)
	}
	return p.Envelope.Key, nil
}

// openSendEnv is what send-file and watch-dir share: --topic required, the
// file environment, the topic's KEK (an envelope policy) and a sender. The
// caller closes the environment.
func openSendEnv(g *globals, cmd *cobra.Command, topic string, chunkSize int) (*fileEnv, string, *filetransfer.Sender, error) {
	if topic == "" {
		return nil, "", nil, errors.New("--topic is required")
	}
	e, err := openFileEnv(g, cmd)
	if err != nil {
		return nil, "", nil, err
	}
	kek, err := fileKEK(e.cfg, topic)
	if err != nil {
		e.Close()
		return nil, "", nil, err
	}
	s, err := e.sender(chunkSize)
	if err != nil {
		e.Close()
		return nil, "", nil, err
	}
	return e, kek, s, nil
}

func (e *fileEnv) sender(chunkSize int) (*filetransfer.Sender, error) {
	return filetransfer.NewSender(filetransfer.SenderOptions{
		Keys: e.keys, Producer: e.kafka, MaxMessageBytes: e.settings.MaxMessageBytes(),
		ChunkSize: chunkSize, Logger: e.log,
	})
}

// progress returns a progress callback drawing a bar on stderr when stderr
// is a terminal, and a function ending the bar.
func progress(cmd *cobra.Command, name string, size int64) (func(int64), func()) {
	f, ok := cmd.ErrOrStderr().(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) || size <= 0 {
		return nil, func() {}
	}
	bar := progressbar.NewOptions64(size, progressbar.OptionSetWriter(f), progressbar.OptionSetDescription(name),
		progressbar.OptionShowBytes(true), progressbar.OptionThrottle(100*time.Millisecond), progressbar.OptionClearOnFinish())
	return func(n int64) { _ = bar.Set64(n) }, func() { _ = bar.Finish() }
}

func printSent(w io.Writer, verb, path string, r filetransfer.Result) {
	id := r.FileID
	if id == "" {
		id = "-"
	}
	fmt.Fprintf(w, "%s %s file_id=%s size=%d sha256=%s chunks=%d format=%s topic=%s partition=%d offsets=%d-%d\n",
		verb, path, id, r.Size, r.SHA256, r.Chunks, r.Format, r.Topic, r.Partition, r.FirstOffset, r.LastOffset)
}

func newSendFile(g *globals) *cobra.Command {
	var (
		topic     string
		legacy    bool
		chunkSize int
	)
	cmd := &cobra.Command{
		Use:   "send-file FILE...",
		Short: "Send files to a topic encrypted: chunked, one Vault data key per file (or the original demo's one-message format)",
		Long: `Send each FILE to --topic as chunk/1 records: one fresh data key from Vault per
file, chunks of --chunk-size bytes (checked against message.max.bytes), all
keyed by the file id so they stay in order on one partition, produced with
acks=all in bounded batches. Prints the file id, size, SHA-256 and chunk count.
--legacy-format writes the original demo's single-message format instead
(transit key "transit"; files must fit one message). The topic needs a
[policy:<topic>] with mode = envelope. If Vault gives no data key nothing is
produced.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, kek, s, err := openSendEnv(g, cmd, topic, chunkSize)
			if err != nil {
				return err
			}
			defer e.Close()
			for _, path := range args {
				if err := sendOne(cmd, s, topic, kek, path, legacy); err != nil {
					return fmt.Errorf("send-file %s: %w", path, err)
				}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&topic, "topic", "", "topic to send to (required; its policy must have mode = envelope)")
	cmd.Flags().BoolVar(&legacy, "legacy-format", false, "write the original demo's one-message format (X-encryptionkey/X-filename headers)")
	cmd.Flags().IntVar(&chunkSize, "chunk-size", envelope.DefaultChunkSize, "plaintext bytes per chunk")
	return cmd
}

func sendOne(cmd *cobra.Command, s *filetransfer.Sender, topic, kek, path string, legacy bool) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return errors.New("not a regular file")
	}
	name := filepath.Base(path)
	prog, done := progress(cmd, name, fi.Size())
	file := filetransfer.File{Topic: topic, Name: name, KEK: kek, Body: f, Size: fi.Size(), Progress: prog}
	var res filetransfer.Result
	if legacy {
		res, err = s.SendLegacy(cmd.Context(), file)
	} else {
		res, err = s.Send(cmd.Context(), file)
	}
	done()
	if err != nil {
		return err
	}
	printSent(cmd.OutOrStdout(), "sent", path, res)
	return nil
}

func newWatchDir(g *globals) *cobra.Command {
	var (
		topic, moveSent, state string
		settle                 time.Duration
		chunkSize              int
	)
	cmd := &cobra.Command{
		Use:   "watch-dir DIR",
		Short: "Send each new or changed file of DIR once (state kept on disk), until Ctrl-C",
		Long: `Watch DIR (not recursively) and send each new or changed regular file to
--topic as send-file does, once: a file is sent when its size and mtime have
been stable for --settle; what was sent (name, size, mtime, SHA-256, file id)
is kept in --state (default DIR/.kafkagate-watch-<topic>.json, written
atomically), so a restart does not send a file again. Hidden, editor and
partial-download files are ignored. --move-sent moves sent files aside.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, kek, s, err := openSendEnv(g, cmd, topic, chunkSize)
			if err != nil {
				return err
			}
			defer e.Close()
			var mu sync.Mutex
			e.log.Info("watching", "dir", args[0], "topic", topic)
			return filetransfer.Watch(cmd.Context(), filetransfer.WatchOptions{
				Dir: args[0], Topic: topic, KEK: kek, Sender: s, StatePath: state, MoveSent: moveSent, Settle: settle, Logger: e.log,
				OnSent: func(path string, r filetransfer.Result) {
					mu.Lock()
					defer mu.Unlock()
					printSent(cmd.OutOrStdout(), "sent", path, r)
				},
			})
		},
	}
	cmd.Flags().StringVar(&topic, "topic", "", "topic to send to (required; its policy must have mode = envelope)")
	cmd.Flags().StringVar(&moveSent, "move-sent", "", "move each sent file into this folder")
	cmd.Flags().StringVar(&state, "state", "", "state file (default DIR/.kafkagate-watch-<topic>.json)")
	cmd.Flags().DurationVar(&settle, "settle", 2*time.Second, "send a file once its size and mtime are unchanged for this long")
	cmd.Flags().IntVar(&chunkSize, "chunk-size", envelope.DefaultChunkSize, "plaintext bytes per chunk")
	return cmd
}

func newReceiveDir(g *globals) *cobra.Command {
	var (
		topic, group, quarantine, dlq string
		timeout                       time.Duration
		once                          bool
		maxOpen                       int
		membership                    groupFlags
	)
	cmd := &cobra.Command{
		Use:   "receive-dir DIR",
		Short: "Receive the files of a topic into DIR (consumer group), quarantining what cannot be decrypted",
		Long: `Consume --topic with consumer group --group and write each file into DIR:
chunks are decrypted into a temporary file, which is renamed into place only
after its size and SHA-256 match the signed manifest. Names are sanitised
(never outside DIR; unsafe names become file-<id>) and existing files are
never overwritten ("name (1).ext"). Records without a kafkagate format are
read as the original demo's legacy format and written as received-<name>.
A record that cannot be decrypted (tampered, unknown key, Vault refusing the
key) is kept in --quarantine (default ENCRYPTED_MESSAGES) or, with --dlq,
produced to that topic as it is; so is a file whose final chunk does not
arrive within --incomplete-timeout. Offsets are committed only once a file is
written or quarantined. --once stops when caught up.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := openTopicEnv(g, cmd, topic)
			if err != nil {
				return err
			}
			defer e.Close()
			keks := []string{envelope.DefaultKEK}
			if p, ok := e.cfg.Policies.For(topic); ok && p.Mode == policy.Envelope && p.Envelope.Key != envelope.DefaultKEK {
				keks = append(keks, p.Envelope.Key)
			}
			op, err := envelope.NewOpener(e.keys, envelope.OpenerOptions{KEKs: keks})
			if err != nil {
				return err
			}
			defer op.Close()
			var q filetransfer.Quarantine = &filetransfer.DirQuarantine{Dir: quarantine}
			if dlq != "" {
				q = &filetransfer.DLQ{Producer: e.kafka, Topic: dlq}
			}
			if group == "" {
				group = "kafkagate-receive-dir-" + topic
			}
			var (
				mu                 sync.Mutex
				files, quarantined int
			)
			out := cmd.OutOrStdout()
			ro := filetransfer.ReceiverOptions{
				Dir: args[0], Topic: topic, Group: group, Settings: e.settings, Kafka: e.kafka, Opener: op, Quarantine: q, AcceptLegacy: acceptsLegacy(e.cfg, topic),
				IncompleteTimeout: timeout, MaxOpenFiles: maxOpen, Once: once, Logger: e.log,
				OnFile: func(got filetransfer.Received) {
					mu.Lock()
					defer mu.Unlock()
					verb := "received"
					if got.Duplicate {
						verb = "duplicate"
					} else {
						files++
					}
					id := got.FileID
					if id == "" {
						id = "-"
					}
					fmt.Fprintf(out, "%s %s file_id=%s size=%d sha256=%s chunks=%d format=%s\n", verb, got.Path, id, got.Size, got.SHA256, got.Chunks, got.Format)
				},
				OnQuarantine: func(q filetransfer.Quarantined) {
					mu.Lock()
					defer mu.Unlock()
					quarantined += len(q.Locations)
				},
			}
			membership.apply(&ro.InstanceID, &ro.SessionTimeout, &ro.RebalanceTimeout)
			r, err := filetransfer.NewReceiver(ro)
			if err != nil {
				return err
			}
			err = r.Run(cmd.Context())
			mu.Lock()
			defer mu.Unlock()
			e.log.Info("receive-dir finished", "files", files, "quarantined_records", quarantined)
			return err
		},
	}
	cmd.Flags().StringVar(&topic, "topic", "", "topic to receive from (required)")
	cmd.Flags().StringVar(&group, "group", "", "consumer group id (default kafkagate-receive-dir-<topic>)")
	cmd.Flags().StringVar(&quarantine, "quarantine", filetransfer.DefaultQuarantineDir, "folder for records that cannot be decrypted")
	cmd.Flags().StringVar(&dlq, "dlq", "", "dead-letter topic for records that cannot be decrypted, instead of the quarantine folder")
	cmd.Flags().DurationVar(&timeout, "incomplete-timeout", filetransfer.DefaultIncompleteTimeout, "quarantine a file whose next chunk does not arrive within this time")
	cmd.Flags().BoolVar(&once, "once", false, "stop when caught up with the topic (files in progress wait for --incomplete-timeout)")
	cmd.Flags().IntVar(&maxOpen, "max-open-files", filetransfer.DefaultMaxOpenFiles, "files in progress per partition")
	membership.bind(cmd, "")
	return cmd
}

func newRedrive(g *globals) *cobra.Command {
	var (
		topic string
		again bool
	)
	cmd := &cobra.Command{
		Use:   "redrive DIR",
		Short: "Produce records kept in a quarantine folder back to their topic, e.g. once their key is available again",
		Long: `Re-produce the records quarantined in DIR from --topic back to --topic, in
their original order, with their key and headers unchanged (so they decrypt
once the reason is fixed: a key restored, a Vault policy granted). Each
redriven entry is kept and marked with a <entry>.redriven.json sidecar;
marked entries are skipped unless --again.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := openTopicEnv(g, cmd, topic)
			if err != nil {
				return err
			}
			defer e.Close()
			res, err := filetransfer.Redrive(cmd.Context(), filetransfer.RedriveOptions{Dir: args[0], Topic: topic, Producer: e.kafka, Again: again, Logger: e.log})
			fmt.Fprintf(cmd.OutOrStdout(), "redriven %d records to %s (skipped: %d already redriven, %d from other topics, %d incomplete entries)\n",
				res.Redriven, topic, res.AlreadyDone, res.OtherTopic, res.Incomplete)
			return err
		},
	}
	cmd.Flags().StringVar(&topic, "topic", "", "redrive the records quarantined from this topic, back to it (required)")
	cmd.Flags().BoolVar(&again, "again", false, "also redrive entries already marked redriven")
	return cmd
}

// acceptsLegacy reports whether topic's policy opens the original demo's
// file messages (legacy = accept).
func acceptsLegacy(cfg *config.File, topic string) bool {
	p, ok := cfg.Policies.For(topic)
	return ok && p.AcceptLegacy
}
