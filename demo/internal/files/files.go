// Package files is demo 3 of the original: the producer sends every
// regular file of a directory to the file topic, encrypted in flight
// (kafkagate's chunk/1 format: one fresh Vault data key per file, chunked
// so any size fits Kafka's message limit), and the consumer writes them
// into the destination directory, checked (size and SHA-256) and renamed
// into place atomically, never overwriting a file.
package files

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"github.com/kafkagate/kafkagate/internal/envelope"
	"github.com/kafkagate/kafkagate/internal/filetransfer"
	"github.com/kafkagate/kafkagate/internal/kafka"
	"github.com/kafkagate/kafkagate/internal/transit"
)

// NewSender returns a sender producing through kc with data keys from
// Vault transit tc; records are sized for kc's message.max.bytes.
func NewSender(kc *kafka.Client, tc *transit.Client, log *slog.Logger) (*filetransfer.Sender, error) {
	return filetransfer.NewSender(filetransfer.SenderOptions{
		Keys:            envelope.NewKMSKeys(tc),
		Producer:        kc,
		MaxMessageBytes: kc.Settings().MaxMessageBytes(),
		Logger:          log,
	})
}

// SendOptions configure SendDir.
type SendOptions struct {
	Dir   string
	Topic string
	KEK   string // transit key wrapping each file's data key ([policy:<topic>] envelope_key)
	Out   io.Writer
}

// RegularFiles lists the regular files directly in dir (hidden ones too,
// as the original did; no subdirectories, no symbolic links), sorted by
// name.
func RegularFiles(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("source directory: %w", err)
	}
	var out []string
	for _, e := range ents {
		if e.Type().IsRegular() {
			out = append(out, e.Name())
		}
	}
	slices.Sort(out)
	return out, nil
}

// SendDir sends every regular file of o.Dir. A file whose name cannot be
// sent as it is (see envelope.ValidFileName) is skipped with a note. It
// stops at the first file that fails.
func SendDir(ctx context.Context, s *filetransfer.Sender, o SendOptions) ([]filetransfer.Result, error) {
	names, err := RegularFiles(o.Dir)
	if err != nil {
		return nil, err
	}
	out := io.Discard
	if o.Out != nil {
		out = o.Out
	}
	var res []filetransfer.Result
	for _, name := range names {
		if !envelope.ValidFileName(name) {
			fmt.Fprintf(out, "skipped %q: not a name that can be sent as it is\n", name)
			continue
		}
		r, err := sendOne(ctx, s, o, name)
		if err != nil {
			return res, err
		}
		res = append(res, r)
		fmt.Fprintf(out, "sent %s (%d bytes, sha256 %s) as %d encrypted record(s) to %s/%d@%d-%d\n",
			r.Name, r.Size, r.SHA256, r.Chunks, r.Topic, r.Partition, r.FirstOffset, r.LastOffset)
	}
	return res, nil
}

func sendOne(ctx context.Context, s *filetransfer.Sender, o SendOptions, name string) (filetransfer.Result, error) {
	f, err := os.Open(filepath.Join(o.Dir, name))
	if err != nil {
		return filetransfer.Result{}, fmt.Errorf("send %s: %w", name, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return filetransfer.Result{}, fmt.Errorf("send %s: %w", name, err)
	}
	r, err := s.Send(ctx, filetransfer.File{Topic: o.Topic, Name: name, KEK: o.KEK, Body: f, Size: st.Size()})
	if err != nil {
		return r, fmt.Errorf("send %s: %w", name, err)
	}
	return r, nil
}

// ReceiveOptions configure Receive.
type ReceiveOptions struct {
	Dir   string // destination directory (created if missing)
	Topic string
	Group string
	// KEKs are the transit keys whose data keys are accepted
	// ([policy:<topic>] envelope_key).
	KEKs []string
	// AcceptLegacy opens the original demo's file messages too
	// ([policy:<topic>] legacy = accept).
	AcceptLegacy bool
	Kafka        *kafka.Client
	Transit      *transit.Client
	// QuarantineDir keeps records that cannot be decrypted, default
	// filetransfer.DefaultQuarantineDir.
	QuarantineDir string
	// Once stops when the topic is caught up; otherwise Receive runs until
	// ctx ends.
	Once   bool
	Out    io.Writer
	Logger *slog.Logger
}

// Receive writes the files of o.Topic into o.Dir and returns what it
// wrote (and what it had written before, reported as duplicates).
func Receive(ctx context.Context, o ReceiveOptions) ([]filetransfer.Received, error) {
	opener, err := envelope.NewOpener(envelope.NewKMSKeys(o.Transit), envelope.OpenerOptions{KEKs: o.KEKs})
	if err != nil {
		return nil, err
	}
	out := io.Discard
	if o.Out != nil {
		out = o.Out
	}
	q := o.QuarantineDir
	if q == "" {
		q = filetransfer.DefaultQuarantineDir
	}
	var (
		mu  sync.Mutex // OnFile and OnQuarantine run on the partitions' goroutines
		got []filetransfer.Received
	)
	r, err := filetransfer.NewReceiver(filetransfer.ReceiverOptions{
		Dir: o.Dir, Topic: o.Topic, Group: o.Group, Settings: o.Kafka.Settings(), Kafka: o.Kafka, Opener: opener, AcceptLegacy: o.AcceptLegacy,
		Quarantine: &filetransfer.DirQuarantine{Dir: q}, Once: o.Once, Logger: o.Logger,
		OnFile: func(rc filetransfer.Received) {
			mu.Lock()
			defer mu.Unlock()
			got = append(got, rc)
			if rc.Duplicate {
				fmt.Fprintf(out, "already received %q → %s\n", rc.Name, rc.Path)
				return
			}
			fmt.Fprintf(out, "received %q (%d bytes, sha256 %s, verified) → %s\n", rc.Name, rc.Size, rc.SHA256, rc.Path)
		},
		OnQuarantine: func(qd filetransfer.Quarantined) {
			mu.Lock()
			defer mu.Unlock()
			fmt.Fprintf(out, "quarantined %d record(s) of %s/%d (%s) → %v\n", len(qd.Offsets), qd.Topic, qd.Partition, qd.Reason, qd.Locations)
		},
	})
	if err != nil {
		return nil, err
	}
	err = r.Run(ctx)
	mu.Lock()
	defer mu.Unlock()
	return got, err
}
