package filetransfer

import (
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kafkagate/kafkagate/internal/kafka"
)

// RedriveOptions configure Redrive.
type RedriveOptions struct {
	Dir   string // a quarantine folder (DirQuarantine layout)
	Topic string // redrive the records quarantined from this topic, back to it
	// Producer sends the records again. Required.
	Producer Producer
	// Again also redrives entries already marked redriven.
	Again bool
	// BatchBytes bounds one produce call, default DefaultBatchBytes.
	BatchBytes int
	Logger     *slog.Logger
}

// RedriveResult counts what Redrive did.
type RedriveResult struct {
	Redriven    int // records produced again
	AlreadyDone int // entries skipped: marked redriven (without Again)
	OtherTopic  int // entries skipped: quarantined from another topic
	Incomplete  int // entries skipped: .key, .value or .headers.json missing or unreadable
}

// RedrivenSuffix marks a redriven entry: <base>.redriven.json records when
// and where it was produced again. The entry itself is kept.
const RedrivenSuffix = ".redriven.json"

type redrivenMark struct {
	RedrivenAt time.Time `json:"redriven_at"`
	Topic      string    `json:"topic"`
	Partition  int32     `json:"partition"`
	Offset     int64     `json:"offset"`
}

type redriveEntry struct {
	base string
	meta QuarantineMeta
}

// Redrive produces the records quarantined in Dir from Topic back to Topic
// with their key (null stays null), value and headers, plus a
// kafkagate.note.redriven-from header (<topic>/<partition>/<offset>; not
// authenticated, so decryption is unaffected). Records go in their original
// partition and offset order, keyed as before, so the chunks of a file
// arrive together and in order. The timestamp is the time of the redrive
// (the original stays in the entry's metadata), so time-based retention
// does not delete a redriven record at once. Each redriven entry gets a .redriven.json
// sidecar; the originals are kept.
func Redrive(ctx context.Context, o RedriveOptions) (RedriveResult, error) {
	var res RedriveResult
	if o.Dir == "" || o.Topic == "" || o.Producer == nil {
		return res, errors.New("filetransfer: redrive needs Dir, Topic and Producer")
	}
	if o.BatchBytes <= 0 {
		o.BatchBytes = DefaultBatchBytes
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	metas, err := filepath.Glob(filepath.Join(o.Dir, "*.headers.json"))
	if err != nil {
		return res, err
	}
	if metas == nil {
		if _, err := os.Stat(o.Dir); err != nil {
			return res, fmt.Errorf("quarantine folder: %w", err)
		}
	}
	var entries []redriveEntry
	for _, mp := range metas {
		base := strings.TrimSuffix(mp, ".headers.json")
		b, err := os.ReadFile(mp)
		var m QuarantineMeta
		if err == nil {
			err = json.Unmarshal(b, &m)
		}
		if err != nil {
			o.Logger.Warn("quarantine entry skipped: unreadable metadata", "path", mp, "error", err)
			res.Incomplete++
			continue
		}
		if m.Topic != o.Topic {
			res.OtherTopic++
			continue
		}
		if _, err := os.Stat(base + RedrivenSuffix); err == nil && !o.Again {
			res.AlreadyDone++
			continue
		}
		entries = append(entries, redriveEntry{base: base, meta: m})
	}
	slices.SortFunc(entries, func(a, b redriveEntry) int {
		return cmp.Or(cmp.Compare(a.meta.Partition, b.meta.Partition), cmp.Compare(a.meta.Offset, b.meta.Offset))
	})

	var (
		batch []kafka.Message
		bases []string
		bytes int
	)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		dels, err := o.Producer.Produce(ctx, batch)
		if err != nil {
			return err
		}
		for i, d := range dels {
			if d.Err != nil {
				return fmt.Errorf("redrive %s: %w", filepath.Base(bases[i]), d.Err)
			}
			mark, _ := json.Marshal(redrivenMark{RedrivenAt: time.Now().UTC(), Topic: batch[i].Topic, Partition: d.Partition, Offset: d.Offset})
			if err := writeFileAtomic(bases[i]+RedrivenSuffix, append(mark, '\n'), 0o600); err != nil {
				return fmt.Errorf("mark %s redriven: %w", filepath.Base(bases[i]), err)
			}
			o.Logger.Info("record redriven", "path", bases[i]+".value", "topic", batch[i].Topic, "partition", d.Partition, "offset", d.Offset)
			res.Redriven++
		}
		batch, bases, bytes = batch[:0], bases[:0], 0
		return nil
	}
	for _, e := range entries {
		msg, err := loadEntry(e)
		if err != nil {
			o.Logger.Warn("quarantine entry skipped", "path", e.base+".headers.json", "error", err)
			res.Incomplete++
			continue
		}
		batch = append(batch, msg)
		bases = append(bases, e.base)
		bytes += len(msg.Value)
		if bytes >= o.BatchBytes || len(batch) >= 64 {
			if err := flush(); err != nil {
				return res, err
			}
		}
	}
	if err := flush(); err != nil {
		return res, err
	}
	return res, nil
}

func loadEntry(e redriveEntry) (kafka.Message, error) {
	m := e.meta
	msg := kafka.Message{Topic: m.Topic, Partition: -1}
	key, err := os.ReadFile(e.base + ".key")
	if err != nil {
		return msg, err
	}
	value, err := os.ReadFile(e.base + ".value")
	if err != nil {
		return msg, err
	}
	if !m.KeyNull {
		msg.Key = key
		if msg.Key == nil {
			msg.Key = []byte{}
		}
	}
	if !m.ValueNull {
		msg.Value = value
		if msg.Value == nil {
			msg.Value = []byte{}
		}
	}
	for _, h := range m.Headers {
		if h.Key == NoteRedriven {
			continue
		}
		v := []byte(h.Value)
		if h.ValueBase64 != "" {
			if v, err = base64.StdEncoding.DecodeString(h.ValueBase64); err != nil {
				return msg, fmt.Errorf("header %s: %w", h.Key, err)
			}
		}
		msg.Headers = append(msg.Headers, kafka.Header{Key: h.Key, Value: v})
	}
	msg.Headers = append(msg.Headers, kafka.Header{Key: NoteRedriven,
		Value: []byte(m.Topic + "/" + strconv.Itoa(int(m.Partition)) + "/" + strconv.FormatInt(m.Offset, 10))})
	return msg, nil
}
