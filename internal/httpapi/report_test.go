package httpapi

import (
	"bytes"
	"testing"
	"time"

	"github.com/kafkagate/kafkagate/internal/protect"
)

// reportCases covers every field of a produce report, present and absent,
// and strings that need escaping.
func reportCases() []produceResponse {
	part, off := int32(3), int64(1234567890123)
	zero, zoff := int32(0), int64(0)
	ts := time.Date(2026, 12, 4, 5, 6, 7, 890000000, time.UTC)
	tsZone := time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.FixedZone("x", 5*3600+1800))
	tsWhole := time.Date(1999, 12, 31, 23, 59, 59, 0, time.UTC)
	tsBadYear := time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)
	fields := []protect.FieldInfo{
		{Path: "card.number", Mode: "transit", Key: "k1", KeyVersion: 2},
		{Path: "ssn", Mode: "fpe", Domain: "digits", Format: "keep-4", Bound: true},
		{Path: `we"ird\path` + "\x01\u2028<&>é\xff", Mode: "transit"},
	}
	return []produceResponse{
		{ErrorCode: 200, ClusterID: "c1", TopicName: "orders", PartitionID: &part, Offset: &off, Timestamp: &ts,
			Key: &sizeInfo{Type: "STRING", Size: 5}, Value: &sizeInfo{Type: "JSON", Size: 180},
			Encryption: &encryption{Policy: "fields", Fields: fields}},
		{ErrorCode: 200, TopicName: "t", PartitionID: &zero, Offset: &zoff, Timestamp: &tsZone,
			Encryption: &encryption{Policy: "envelope", Fields: []protect.FieldInfo{}}},
		{ErrorCode: 200, Timestamp: &tsWhole, Encryption: &encryption{Policy: "fields"}},
		{ErrorCode: 200, Timestamp: &tsBadYear},
		{ErrorCode: 40002, Message: `request field "value" has the wrong type`, Field: "value"},
		{ErrorCode: 50301, Message: "vault <unavailable> & \"down\"\n\t"},
		{ErrorCode: -1, Message: "\u2029 \x7f \xed\xa0\x80"},
		{},
	}
}

// TestAppendReportLine: the appended report is byte for byte what
// encoding/json writes for it.
func TestAppendReportLine(t *testing.T) {
	for i, o := range reportCases() {
		want := reportLine(o)
		got := appendReportLine([]byte("prefix"), &o)
		if !bytes.Equal(got, append([]byte("prefix"), want...)) {
			t.Errorf("case %d:\n got %q\nwant prefix%q", i, got, want)
		}
	}
}

func BenchmarkReportLine(b *testing.B) {
	o := reportCases()[0]
	o.Encryption.Fields = o.Encryption.Fields[:2]
	b.Run("append", func(b *testing.B) {
		b.ReportAllocs()
		buf := make([]byte, 0, 4096)
		for b.Loop() {
			buf = appendReportLine(buf[:0], &o)
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = reportLine(o)
		}
	})
}
