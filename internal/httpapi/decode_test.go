package httpapi

import (
	"testing"
)

// benchRecord is the bench's produce record: three transit fields, a key.
var benchRecord = []byte(`{"key":{"type":"STRING","data":"order-1234"},"value":{"type":"JSON","data":{"order_id":"o-1234","customer":{"name":"Ada Lovelace","email":"ada@example.com"},"card":{"number":"4111111111111111","expiry":"12/29"},"amount":42.5}}}`)

// TestDecodeRecordFastTakesBenchRecord: the common record shape is read
// in one pass, to what decodeRecord reads (FuzzProduceBody checks the
// agreement on arbitrary input).
func TestDecodeRecordFastTakesBenchRecord(t *testing.T) {
	fast, ok := decodeRecordFast(benchRecord)
	if !ok {
		t.Fatal("single-pass decode refused the common record shape")
	}
	slow, aerr := decodeRecord(benchRecord)
	if aerr != nil {
		t.Fatal(aerr)
	}
	if fast.Key.Type != slow.Key.Type || string(fast.Key.Data) != string(slow.Key.Data) ||
		fast.Value.Type != slow.Value.Type || string(fast.Value.Data) != string(slow.Value.Data) {
		t.Fatalf("fast %+v %+v, slow %+v %+v", fast.Key, fast.Value, slow.Key, slow.Value)
	}
}

func BenchmarkDecodeRecord(b *testing.B) {
	b.Run("single-pass", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, ok := decodeRecordFast(benchRecord); !ok {
				b.Fatal("refused")
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, aerr := decodeRecord(benchRecord); aerr != nil {
				b.Fatal(aerr)
			}
		}
	})
}
