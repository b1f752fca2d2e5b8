package testkit_test

import (
	"bytes"
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/kafkagate/kafkagate/internal/devenv"
	"github.com/kafkagate/kafkagate/internal/testkit"
)

// clientMessages are records with awkward bytes: NUL, 0xff, newlines,
// tabs, an empty value.
func clientMessages(client string) []testkit.ClientMessage {
	var out []testkit.ClientMessage
	for i := 0; i < 6; i++ {
		v := []byte(fmt.Sprintf("%s record %d\x00\xff\n\t", client, i))
		if i == 5 {
			v = []byte{}
		}
		out = append(out, testkit.ClientMessage{Key: []byte(fmt.Sprintf("key-%d", i)), Value: v})
	}
	return out
}

// sameRecords compares keys and values, whatever the partition order.
func sameRecords(t *testing.T, got, want []testkit.ClientMessage) {
	t.Helper()
	norm := func(ms []testkit.ClientMessage) []string {
		var s []string
		for _, m := range ms {
			s = append(s, fmt.Sprintf("%q=%q", m.Key, m.Value))
		}
		sort.Strings(s)
		return s
	}
	if g, w := norm(got), norm(want); strings.Join(g, "\n") != strings.Join(w, "\n") {
		t.Fatalf("read\n%s\nwant\n%s", strings.Join(g, "\n"), strings.Join(w, "\n"))
	}
}

// committed sums a group's committed offsets on topic: the number of
// records it has consumed when it started at offset 0.
func committed(t *testing.T, brokers []string, group, topic string) int64 {
	t.Helper()
	admin := testkit.Admin(t, brokers)
	resp, err := admin.ListConsumerGroupOffsets(group, nil)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, b := range resp.Blocks[topic] {
		if b.Offset > 0 {
			n += b.Offset
		}
	}
	return n
}

// TestOutsideClients: each outside client produces to the plain kfake
// broker and consumes back in a consumer group, byte for byte, and
// commits; another client reads what it produced.
func TestOutsideClients(t *testing.T) {
	kc, err := devenv.StartKafka(devenv.KafkaOptions{FastGroups: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kc.Close)
	brokers := kc.ListenAddrs()
	conn := testkit.ClientConn{Bootstrap: brokers[0]}
	for _, mk := range testkit.OutsideClients() {
		t.Run(mk.Name, func(t *testing.T) {
			c := mk.New(t)
			ctx := context.Background()
			topic, want := "outside-"+mk.Name, clientMessages(mk.Name)
			if err := c.Produce(ctx, conn, topic, want); err != nil {
				t.Fatal(err)
			}
			got, err := c.Consume(ctx, conn, topic, "g-"+mk.Name, len(want))
			if err != nil {
				t.Fatal(err)
			}
			sameRecords(t, got, want)
			if n := committed(t, brokers, "g-"+mk.Name, topic); n != int64(len(want)) {
				t.Fatalf("group committed %d records, read %d", n, len(want))
			}
			// A direct read sees the same records.
			direct := testkit.ReadAll(t, brokers, topic)
			if len(direct) != len(want) {
				t.Fatalf("broker holds %d records", len(direct))
			}
			for _, m := range direct {
				if !bytes.Contains(m.Value, []byte(mk.Name)) && len(m.Value) != 0 {
					t.Fatalf("stored %q", m.Value)
				}
			}
		})
	}
}
