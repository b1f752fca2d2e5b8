package protect

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/kafkagate/kafkagate/internal/envelope"
	"github.com/kafkagate/kafkagate/internal/policy"
)

// allowPolicies is the policy set of the allow-list tests.
func allowPolicies(t testing.TB) *policy.Set {
	t.Helper()
	mk := func(topic string, kv map[string]string) *policy.Policy {
		p, err := policy.Parse(topic, kv)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	ps, err := policy.NewSet(
		mk("cards", map[string]string{"fields": "card fpe format=full domain=payments.card_number, Name transit"}),
		mk("strict", map[string]string{"fields": "card fpe format=keep-bin-last4 fallback=full domain=d1 untweaked=refuse"}),
		mk("noaad", map[string]string{"aad": "off", "fields": "memo transit"}),
		mk("docs", map[string]string{"mode": "envelope"}),
		mk("docs_legacy", map[string]string{"mode": "envelope", "legacy": "accept"}),
		mk("raw", map[string]string{"mode": "passthrough"}),
	)
	if err != nil {
		t.Fatal(err)
	}
	return ps
}

// noVaultEngine has no transit client at all: a record that reached Vault
// would panic the test. Everything the allow-list refuses must fail first.
func noVaultEngine(t *testing.T) *Engine {
	t.Helper()
	return New(nil, Options{Policies: allowPolicies(t)})
}

func fh(v string) []Header { return []Header{{Key: HeaderFields, Value: []byte(v)}} }

func TestAllowListRefusesBeforeVault(t *testing.T) {
	e := noVaultEngine(t)
	envHeaders := []Header{{Key: envelope.HeaderFormat, Value: []byte("record/1")}, {Key: envelope.HeaderKEK, Value: []byte("transit/kafkagate-envelope")}, {Key: envelope.HeaderEDEK, Value: []byte("vault:v1:abc")}}
	legacy := []Header{{Key: envelope.LegacyKeyHeader, Value: []byte("vault:v1:abc")}, {Key: envelope.LegacyNameHeader, Value: []byte("f.txt")}}
	sealed := []Header{{Key: HeaderSealed, Value: []byte(`{"v":1,"k":"kafka-elsewhere"}`)}}
	ct := `"vault:v1:AAAA"`
	cases := []struct {
		name    string
		rec     Record
		status  Status
		code    string // record-level code
		notEnc  int    // fields reported not_encrypted
		allowed bool   // errors.Is(err, ErrNotAllowed)
	}{
		{"foreign transit key", Record{Topic: "cards", Value: []byte(`{"Name":` + ct + `}`), Headers: fh(`{"v":1,"f":[{"p":"Name","m":"transit","k":"kafka-secret","a":1}]}`)}, StatusFailed, CodeNotAllowed, 0, true},
		{"aad off claimed where the policy binds", Record{Topic: "cards", Value: []byte(`{"Name":` + ct + `}`), Headers: fh(`{"v":1,"f":[{"p":"Name","m":"transit","k":"kafka-cards"}]}`)}, StatusFailed, CodeNotAllowed, 0, true},
		{"aad on claimed where the policy does not bind", Record{Topic: "noaad", Value: []byte(`{"memo":` + ct + `}`), Headers: fh(`{"v":1,"f":[{"p":"memo","m":"transit","k":"kafka-noaad","a":1}]}`)}, StatusFailed, CodeNotAllowed, 0, true},
		{"foreign fpe domain", Record{Topic: "cards", Value: []byte(`{"card":"4111-1111-1111-1111"}`), Headers: fh(`{"v":1,"f":[{"p":"card","m":"fpe","d":"other","n":1,"fmt":"full","b":1}]}`)}, StatusFailed, CodeNotAllowed, 0, true},
		{"other fpe format", Record{Topic: "cards", Value: []byte(`{"card":"4111-1111-1111-1111"}`), Headers: fh(`{"v":1,"f":[{"p":"card","m":"fpe","d":"payments.card_number","n":1,"fmt":"digits","b":1}]}`)}, StatusFailed, CodeNotAllowed, 0, true},
		{"unbound fpe token where refused", Record{Topic: "strict", Value: []byte(`{"card":"4111-1111-1111-1111"}`), Headers: fh(`{"v":1,"f":[{"p":"card","m":"fpe","d":"d1","n":1,"fmt":"keep-bin-last4"}]}`)}, StatusFailed, CodeNotAllowed, 0, true},
		{"path outside the policy", Record{Topic: "cards", Value: []byte(`{"x":` + ct + `}`), Headers: fh(`{"v":1,"f":[{"p":"x","m":"transit","k":"kafka-cards","a":1}]}`)}, StatusFailed, CodeNotAllowed, 0, true},
		{"mode differs from the policy", Record{Topic: "cards", Value: []byte(`{"card":` + ct + `}`), Headers: fh(`{"v":1,"f":[{"p":"card","m":"transit","k":"kafka-cards","a":1}]}`)}, StatusFailed, CodeNotAllowed, 0, true},
		{"field listed twice", Record{Topic: "cards", Value: []byte(`{"Name":` + ct + `}`), Headers: fh(`{"v":1,"f":[{"p":"Name","m":"transit","k":"kafka-cards","a":1},{"p":"Name","m":"transit","k":"kafka-cards","a":1}]}`)}, StatusFailed, CodeBadHeader, 0, false},
		{"flag out of range", Record{Topic: "cards", Value: []byte(`{"Name":` + ct + `}`), Headers: fh(`{"v":1,"f":[{"p":"Name","m":"transit","k":"kafka-cards","a":2}]}`)}, StatusFailed, CodeBadHeader, 0, false},
		{"envelope record on a fields topic", Record{Topic: "cards", Value: []byte("x"), Headers: envHeaders}, StatusFailed, CodeNotAllowed, 0, true},
		{"fields record on an envelope topic", Record{Topic: "docs", Value: []byte(`{"Name":"Mallory"}`), Headers: fh(`{"v":1,"f":[]}`)}, StatusFailed, CodeNotAllowed, 0, true},
		{"fields record on a passthrough topic", Record{Topic: "raw", Value: []byte(`{}`), Headers: fh(`{"v":1,"f":[]}`)}, StatusFailed, CodeNotAllowed, 0, true},
		{"fields record on a topic without policy", Record{Topic: "nobody", Value: []byte(`{}`), Headers: fh(`{"v":1,"f":[]}`)}, StatusFailed, CodeNotAllowed, 0, true},
		{"envelope record under a foreign KEK", Record{Topic: "docs", Value: []byte("x"), Headers: []Header{{Key: envelope.HeaderFormat, Value: []byte("record/1")}, {Key: envelope.HeaderKEK, Value: []byte("transit/somebody-else")}, {Key: envelope.HeaderEDEK, Value: []byte("vault:v1:abc")}}}, StatusFailed, CodeNotAllowed, 0, true},
		{"legacy record without legacy = accept", Record{Topic: "docs", Value: []byte("x"), Headers: legacy}, StatusFailed, CodeNotAllowed, 0, true},
		{"sealed value under a foreign key", Record{Topic: "cards.dlq", Value: []byte("vault:v1:abc"), Headers: sealed}, StatusFailed, CodeNotAllowed, 0, true},
		{"two formats at once", Record{Topic: "cards", Value: []byte(`{}`), Headers: append(fh(`{"v":1,"f":[]}`), sealed...)}, StatusFailed, CodeBadHeader, 0, false},
		{"empty list, nothing protected", Record{Topic: "cards", Value: []byte(`{"iban":"XX00"}`), Headers: fh(`{"v":1,"f":[]}`)}, StatusUnencrypted, "", 0, false},
		{"empty list, policy fields in clear", Record{Topic: "cards", Value: []byte(`{"Name":"Mallory","card":"4111-1111-1111-1111"}`), Headers: fh(`{"v":1,"f":[]}`)}, StatusFailed, "", 2, false},
		{"transit field that is no ciphertext", Record{Topic: "noaad", Value: []byte(`{"memo":"hello"}`), Headers: fh(`{"v":1,"f":[{"p":"memo","m":"transit","k":"kafka-noaad"}]}`)}, StatusFailed, "", 0, false},
		{"deep nesting", Record{Topic: "cards", Value: append([]byte(`{"Name":`), bytes.Repeat([]byte("["), 1<<20)...), Headers: fh(`{"v":1,"f":[]}`)}, StatusFailed, CodeTooDeep, 0, false},
		{"deep nesting without header", Record{Topic: "cards", Value: append([]byte(`{"Name":`), bytes.Repeat([]byte("{\"a\":"), 1<<18)...)}, StatusFailed, CodeTooDeep, 0, false},
		{"no header on an envelope topic", Record{Topic: "docs", Value: []byte(`{"Name":"x"}`)}, StatusUnencrypted, "", 0, false},
	}
	recs := make([]Record, len(cases))
	for i, c := range cases {
		recs[i] = c.rec
	}
	out, err := e.Decrypt(context.Background(), recs)
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range cases {
		o := out[i]
		if o.Status != c.status {
			t.Errorf("%s: status %s, want %s (%v)", c.name, o.Status, c.status, o.Err)
			continue
		}
		var pe *Error
		if c.code != "" && (!errors.As(o.Err, &pe) || pe.Code != c.code) {
			t.Errorf("%s: error %v, want code %s", c.name, o.Err, c.code)
		}
		if c.allowed != errors.Is(o.Err, ErrNotAllowed) {
			t.Errorf("%s: errors.Is(ErrNotAllowed) = %v", c.name, !c.allowed)
		}
		n := 0
		for _, fs := range o.Fields {
			if fs.Status == CodeNotEncrypted {
				n++
			}
		}
		if n != c.notEnc {
			t.Errorf("%s: %d fields not_encrypted, want %d", c.name, n, c.notEnc)
		}
		if o.Status == StatusDecrypted {
			t.Errorf("%s: decrypted", c.name)
		}
		if !bytes.Equal(o.Value, c.rec.Value) {
			t.Errorf("%s: value changed for a record that was not decrypted", c.name)
		}
	}
	// The transit field that is no ciphertext is reported malformed.
	if fs := out[20].Fields; len(fs) != 1 || fs[0].Status != CodeMalformed {
		t.Errorf("malformed transit field: %+v", fs)
	}
}

func TestClassifyFormats(t *testing.T) {
	e := noVaultEngine(t)
	legacy := []Header{{Key: envelope.LegacyKeyHeader, Value: []byte("vault:v1:abc")}}
	for _, c := range []struct {
		rec  Record
		want Format
		ok   bool
	}{
		{Record{Topic: "docs_legacy", Headers: legacy}, FormatLegacy, true},
		{Record{Topic: "docs", Headers: legacy}, FormatLegacy, false},
		{Record{Topic: "cards", Value: []byte(`{"Name":"vault:v1:AAAA"}`)}, FormatFields, true}, // derived from the policy
		{Record{Topic: "cards", Value: []byte(`{"Name":"Ann"}`)}, FormatPlain, true},
		{Record{Topic: "cards.dlq", Value: []byte("vault:v1:x"), Headers: []Header{{Key: HeaderSealed, Value: []byte(`{"v":1,"k":"kafka-cards"}`)}}}, FormatSealed, true},
	} {
		got := e.Classify(c.rec)
		if got.Format != c.want || (got.Err == nil) != c.ok {
			t.Errorf("%s %v: %s %v, want %s ok=%v", c.rec.Topic, c.rec.Headers, got.Format, got.Err, c.want, c.ok)
		}
	}
}

func TestDepthWithinIsIterativeAndExact(t *testing.T) {
	for _, c := range []struct {
		doc  string
		max  int
		want bool
	}{
		{`{"a":[1,{"b":2}]}`, 3, true},
		{`{"a":[1,{"b":2}]}`, 2, false},
		{`{"a":"[[[[[[[[[["}`, 1, true}, // brackets in strings do not count
		{`{"a":"\"[[[["}`, 1, true},     // nor after an escaped quote
		{`]]]]{"a":1}`, 1, true},        // malformed: the parser refuses it
		{strings.Repeat("[", 64), 64, true},
		{strings.Repeat("[", 65), 64, false},
	} {
		if got := depthWithin([]byte(c.doc), c.max); got != c.want {
			t.Errorf("depthWithin(%q, %d) = %v", c.doc, c.max, got)
		}
	}
	// 64 MiB of '[' is refused quickly, without recursion.
	start := time.Now()
	if depthWithin(bytes.Repeat([]byte("["), 64<<20), DefaultMaxDepth) {
		t.Fatal("64 MiB of [ within the limit")
	}
	t.Logf("64 MiB of '[' refused in %s", time.Since(start))
}
