package lifecycle

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/kafkagate/kafkagate/internal/kafka"
	"github.com/kafkagate/kafkagate/internal/protect"
)

// Span is the range of offsets and timestamps of the records of one
// partition that refer to a key version.
type Span struct {
	Partition    int32     `json:"partition"`
	Records      int       `json:"records"`
	OldestOffset int64     `json:"oldest_offset"`
	NewestOffset int64     `json:"newest_offset"`
	OldestTime   time.Time `json:"oldest_timestamp"`
	NewestTime   time.Time `json:"newest_timestamp"`
}

func (s *Span) add(r kafka.Record) {
	if s.Records == 0 {
		s.OldestOffset, s.NewestOffset, s.OldestTime, s.NewestTime = r.Offset, r.Offset, r.Timestamp, r.Timestamp
	}
	s.Records++
	s.OldestOffset, s.NewestOffset = min(s.OldestOffset, r.Offset), max(s.NewestOffset, r.Offset)
	if r.Timestamp.Before(s.OldestTime) {
		s.OldestTime = r.Timestamp
	}
	if r.Timestamp.After(s.NewestTime) {
		s.NewestTime = r.Timestamp
	}
}

// VersionUse counts the records of a topic that refer to one key version.
type VersionUse struct {
	protect.KeyUse
	// Records is the number of records referring to this version (a record
	// with two fields under the same version counts once).
	Records int `json:"records"`
	// Oldest and newest over all partitions.
	OldestTime time.Time `json:"oldest_timestamp"`
	NewestTime time.Time `json:"newest_timestamp"`
	// Partitions has the offsets per partition (offsets of different
	// partitions are not comparable).
	Partitions []Span `json:"partitions"`
}

// Damaged is a record whose kafkagate headers could not be read.
type Damaged struct {
	Partition int32  `json:"partition"`
	Offset    int64  `json:"offset"`
	Error     string `json:"error"`
}

// Inventory is the key version census of a topic.
type Inventory struct {
	Topic       string       `json:"topic"`
	Records     int          `json:"records"`
	Unencrypted int          `json:"unencrypted"`
	Damaged     []Damaged    `json:"damaged,omitempty"`
	Uses        []VersionUse `json:"uses"`
}

// Versions returns the versions of (kind, key) in use, ascending.
func (inv *Inventory) Versions(kind, key string) []int {
	var vs []int
	for _, u := range inv.Uses {
		if u.Kind == kind && u.Key == key {
			vs = append(vs, u.Version)
		}
	}
	slices.Sort(vs)
	return vs
}

// InventoryOptions tune TakeInventory.
type InventoryOptions struct {
	Batch int // records read at once; default 500
}

// TakeInventory scans topic up to its current end. Reading Kafka needs no
// Vault call: the key versions are in the records' headers and
// ciphertext prefixes.
func TakeInventory(ctx context.Context, kc *kafka.Client, eng *protect.Engine, topic string, o InventoryOptions) (*Inventory, error) {
	inv := &Inventory{Topic: topic}
	type ref struct {
		use  protect.KeyUse
		part int32
	}
	uses := map[protect.KeyUse]*VersionUse{}
	spans := map[ref]*Span{}
	err := scan(ctx, kc, topic, nil, o.Batch, func(part int32, recs []kafka.Record) error {
		for _, r := range recs {
			inv.Records++
			ku, err := eng.KeyUses(r)
			if err != nil {
				var pe *protect.Error
				if !errors.As(err, &pe) {
					return fmt.Errorf("inventory %s/%d@%d: %w", topic, part, r.Offset, err)
				}
				inv.Damaged = append(inv.Damaged, Damaged{Partition: part, Offset: r.Offset, Error: pe.Error()})
				continue
			}
			if len(ku) == 0 {
				inv.Unencrypted++
				continue
			}
			seen := map[protect.KeyUse]bool{}
			for _, u := range ku {
				if seen[u] {
					continue
				}
				seen[u] = true
				vu := uses[u]
				if vu == nil {
					vu = &VersionUse{KeyUse: u, OldestTime: r.Timestamp, NewestTime: r.Timestamp}
					uses[u] = vu
				}
				vu.Records++
				if r.Timestamp.Before(vu.OldestTime) {
					vu.OldestTime = r.Timestamp
				}
				if r.Timestamp.After(vu.NewestTime) {
					vu.NewestTime = r.Timestamp
				}
				s := spans[ref{u, part}]
				if s == nil {
					s = &Span{Partition: part}
					spans[ref{u, part}] = s
				}
				s.add(r)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for rf, s := range spans {
		uses[rf.use].Partitions = append(uses[rf.use].Partitions, *s)
	}
	for _, vu := range uses {
		slices.SortFunc(vu.Partitions, func(a, b Span) int { return cmp.Compare(a.Partition, b.Partition) })
		inv.Uses = append(inv.Uses, *vu)
	}
	slices.SortFunc(inv.Uses, func(a, b VersionUse) int {
		return cmp.Or(cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Key, b.Key), cmp.Compare(a.Version, b.Version))
	})
	return inv, nil
}

// WriteTable prints inv as a human-readable table.
func (inv *Inventory) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "topic %s: %d records, %d unencrypted, %d damaged\n", inv.Topic, inv.Records, inv.Unencrypted, len(inv.Damaged))
	fmt.Fprintln(tw, "KIND\tKEY\tVERSION\tRECORDS\tPARTITION\tOFFSETS\tOLDEST\tNEWEST")
	ts := func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return t.UTC().Format(time.RFC3339)
	}
	for _, u := range inv.Uses {
		for i, s := range u.Partitions {
			kind, key, ver, n := "", "", "", ""
			if i == 0 {
				kind, key, ver, n = u.Kind, u.Key, "v"+strconv.Itoa(u.Version), strconv.Itoa(u.Records)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d..%d\t%s\t%s\n", kind, key, ver, n, s.Partition, s.OldestOffset, s.NewestOffset, ts(s.OldestTime), ts(s.NewestTime))
		}
	}
	for _, d := range inv.Damaged {
		fmt.Fprintf(tw, "damaged\t%d@%d\t%s\n", d.Partition, d.Offset, d.Error)
	}
	return tw.Flush()
}
