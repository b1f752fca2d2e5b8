package record

import (
	"reflect"
	"strings"
	"testing"
)

// TestFieldsHeaderCodec: what Encode writes decodes to the same header,
// and every malformed value is refused with an error.
func TestFieldsHeaderCodec(t *testing.T) {
	h := FieldsHeader{V: 1, F: []FieldEntry{
		{P: "Name", M: ModeTransit, K: "kafka-cards", A: 1},
		{P: "card", M: ModeFPE, D: "payments.card_number", N: 2, Fmt: "keep-bin-last4", B: 1},
	}}
	b, err := h.Encode()
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeFieldsHeader(b)
	if err != nil || !reflect.DeepEqual(got, h) {
		t.Fatalf("round trip of %s: %+v %v", b, got, err)
	}
	for _, bad := range []string{
		``, `[]`, `{"v":2,"f":[]}`, `{"v":1,"f":[],"x":1}`,
		`{"v":1,"f":[{"p":"a","m":"transit"}]}`,
		`{"v":1,"f":[{"p":"a","m":"fpe","d":"d","n":0,"fmt":"full"}]}`,
		`{"v":1,"f":[{"p":"a","m":"transit","k":"k","a":2}]}`,
		`{"v":1,"f":[{"p":"a","m":"envelope"}]}`,
		`{"v":1,"f":[{"p":"` + strings.Repeat("a", MaxHeaderBytes) + `","m":"transit","k":"k"}]}`,
	} {
		if _, err := DecodeFieldsHeader([]byte(bad)); err == nil {
			t.Errorf("%.60s: accepted", bad)
		}
	}
}

// TestSealedHeaderCodec: SealedWith decodes to its key; a value without a
// key, of another version or too large is refused.
func TestSealedHeaderCodec(t *testing.T) {
	h, err := DecodeSealedHeader(SealedWith("kafka-dlq"))
	if err != nil || h != (SealedHeader{V: 1, K: "kafka-dlq"}) {
		t.Fatalf("%+v %v", h, err)
	}
	for _, bad := range []string{``, `{"v":1}`, `{"v":2,"k":"x"}`, `{"v":1,"k":"` + strings.Repeat("k", MaxHeaderBytes) + `"}`} {
		if _, err := DecodeSealedHeader([]byte(bad)); err == nil {
			t.Errorf("%.60s: accepted", bad)
		}
	}
}
