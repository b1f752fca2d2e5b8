package record

import (
	"testing"
	"time"
)

func TestHeaderFindsTheFirstOfAName(t *testing.T) {
	r := Record{Headers: []Header{
		{Key: "a", Value: []byte("1")},
		{Key: HeaderFields, Value: []byte("first")},
		{Key: HeaderFields, Value: []byte("second")},
		{Key: "empty", Value: nil},
	}}
	if v, ok := r.Header(HeaderFields); !ok || string(v) != "first" {
		t.Fatalf("Header(%s) = %q, %v", HeaderFields, v, ok)
	}
	if v, ok := r.Header("empty"); !ok || v != nil {
		t.Fatalf("a present header with a nil value: %q, %v", v, ok)
	}
	if v, ok := r.Header("missing"); ok || v != nil {
		t.Fatalf("missing header: %q, %v", v, ok)
	}
	if _, ok := (Record{}).Header("a"); ok {
		t.Fatal("a record without headers has one")
	}
}

// TestSortByTime: timestamp first, then partition, then offset; equal
// records keep their order.
func TestSortByTime(t *testing.T) {
	t0 := time.Unix(100, 0)
	rs := []Record{
		{Partition: 1, Offset: 5, Timestamp: t0.Add(time.Second)},
		{Partition: 2, Offset: 1, Timestamp: t0},
		{Partition: 1, Offset: 9, Timestamp: t0},
		{Partition: 1, Offset: 7, Timestamp: t0},
	}
	SortByTime(rs)
	want := [][2]int64{{1, 7}, {1, 9}, {2, 1}, {1, 5}}
	for i, w := range want {
		if int64(rs[i].Partition) != w[0] || rs[i].Offset != w[1] {
			t.Fatalf("position %d: partition %d offset %d, want %v", i, rs[i].Partition, rs[i].Offset, w)
		}
	}
}
