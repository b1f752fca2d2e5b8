package protect

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/kafkagate/kafkagate/internal/fpe"
	"github.com/kafkagate/kafkagate/internal/kms"
	"github.com/kafkagate/kafkagate/internal/kms/memkms"
	"github.com/kafkagate/kafkagate/internal/policy"
	"github.com/kafkagate/kafkagate/internal/record"
)

// fpeService adapts an fpe.Service to the engine's FPE interface, as the
// gateway does.
type fpeService struct{ s *fpe.Service }

func (a fpeService) Encrypt(domain, format, fallback, bind, value string) (string, int, string, error) {
	f, err := fpe.ParseFormat(format, fallback)
	if err != nil {
		return "", 0, "", err
	}
	f.Bind = bind
	out, v, err := a.s.Encrypt(domain, f, value)
	return out, v, string(f.EffectiveMode(value)), err
}

func (a fpeService) Decrypt(domain, format, bind string, version int, value string) (string, error) {
	mode, fb, _ := strings.Cut(format, ",fallback=")
	f, err := fpe.ParseFormat(mode, fb)
	if err != nil {
		return "", err
	}
	f.Bind = bind
	return a.s.Decrypt(domain, f, version, value)
}

// memEngine is an engine on the in-memory KMS with an FPE key, for the
// policies of allowPolicies plus an envelope topic with a derived KEK.
func memEngine(t testing.TB) (*Engine, *memkms.KMS) {
	t.Helper()
	k := memkms.New(memkms.Options{Upsert: true})
	if err := k.EnsureKey(context.Background(), "kafkagate-envelope", kms.KeySpec{Derived: true}); err != nil {
		t.Fatal(err)
	}
	svc := fpe.NewService()
	for _, d := range []string{"payments.card_number", "d1"} {
		if err := svc.AddKey(d, 1, bytes.Repeat([]byte{7}, fpe.KeySize), true); err != nil {
			t.Fatal(err)
		}
	}
	e := New(k, Options{Policies: allowPolicies(t), FPE: fpeService{svc}})
	t.Cleanup(e.Close)
	return e, k
}

func sealOne(t testing.TB, e *Engine, topic string, value string) Record {
	t.Helper()
	p, _ := e.policies.For(topic)
	out, err := e.EncryptRecords(context.Background(), p, []Record{{Topic: topic, Key: []byte("k"), Value: []byte(value)}})
	if err != nil {
		t.Fatalf("seal for %s: %v", topic, err)
	}
	if out[0].Err != nil {
		t.Fatalf("seal for %s: %v", topic, out[0].Err)
	}
	return Record{Topic: topic, Key: []byte("k"), Value: out[0].Value, Headers: out[0].Headers}
}

func TestRoundTripOnMemKMS(t *testing.T) {
	e, _ := memEngine(t)
	recs := []Record{
		sealOne(t, e, "cards", `{"Name":"Ann","card":"4111-1111-1111-1111","x":1}`),
		sealOne(t, e, "noaad", `{"memo":"hello"}`),
		sealOne(t, e, "docs", "whole value"),
	}
	if bytes.Contains(recs[0].Value, []byte("Ann")) || bytes.Contains(recs[0].Value, []byte("4111-1111-1111-1111")) {
		t.Fatalf("plaintext stored: %s", recs[0].Value)
	}
	if h, _ := header(recs[0].Headers, HeaderFields); !bytes.Contains(h, []byte(`"b":1`)) {
		t.Fatalf("fpe token not bound to its topic: %s", h)
	}
	out, err := e.Decrypt(context.Background(), recs)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{`{"Name":"Ann","card":"4111-1111-1111-1111","x":1}`, `{"memo":"hello"}`, "whole value"}
	for i, o := range out {
		if o.Status != StatusDecrypted || string(o.Value) != want[i] {
			t.Errorf("record %d: %s %q %v", i, o.Status, o.Value, o.Err)
		}
	}
	// The same card token read from another topic with the same domain is
	// another permutation.
	var doc map[string]any
	_ = json.Unmarshal(recs[0].Value, &doc)
	hv, _ := header(recs[0].Headers, HeaderFields)
	var h record.FieldsHeader
	_ = json.Unmarshal(hv, &h)
	moved := Record{Topic: "strict", Value: []byte(fmt.Sprintf(`{"card":%q}`, doc["card"])),
		Headers: fh(fmt.Sprintf(`{"v":1,"f":[{"p":"card","m":"fpe","d":"d1","n":1,"fmt":"keep-bin-last4","b":1}]}`))}
	o, err := e.Decrypt(context.Background(), []Record{moved})
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(o[0].Value, []byte("4111-1111-1111-1111")) {
		t.Fatalf("token decrypted on another topic: %s", o[0].Value)
	}
}

func TestKMSUnavailableFailsClosed(t *testing.T) {
	e, k := memEngine(t)
	good := sealOne(t, e, "cards", `{"Name":"Ann"}`)
	k.SetUnavailable(true)
	p, _ := e.policies.For("cards")
	if _, err := e.Encrypt(context.Background(), p, [][]byte{[]byte(`{"Name":"Bob"}`)}); !errors.Is(err, kms.ErrUnavailable) {
		t.Fatalf("encrypt with the KMS down: %v", err)
	}
	if _, err := e.Decrypt(context.Background(), []Record{good}); !errors.Is(err, kms.ErrUnavailable) {
		t.Fatalf("decrypt with the KMS down: %v", err)
	}
	// Records the policy refuses never reach the KMS, so they still get
	// their status while it is down.
	before := k.Calls("decrypt")
	out, err := e.Decrypt(context.Background(), []Record{{Topic: "cards", Value: []byte(`{"Name":"vault:v1:AAAA"}`), Headers: fh(`{"v":1,"f":[{"p":"Name","m":"transit","k":"other","a":1}]}`)}})
	if err != nil || out[0].Status != StatusFailed || !errors.Is(out[0].Err, ErrNotAllowed) || k.Calls("decrypt") != before {
		t.Fatalf("refused record: %v %+v, calls %d -> %d", err, out, before, k.Calls("decrypt"))
	}
}

// FuzzReadPath hands arbitrary values and headers to the whole read path
// for a fields topic and an envelope topic: it never panics, each record
// takes bounded time, and nothing is reported decrypted unless it holds a
// ciphertext sealed under that topic's policy.
func FuzzReadPath(f *testing.F) {
	e, _ := memEngine(f)
	// Every ciphertext (fields) or value (envelope) sealed per topic.
	sealed := map[string]bool{}
	var seeds []Record
	for _, s := range []struct{ topic, value string }{
		{"cards", `{"Name":"Ann","card":"4111-1111-1111-1111"}`},
		{"cards", `{"Name":"Bob"}`},
		{"noaad", `{"memo":"hello"}`},
		{"docs", `whole value`},
	} {
		r := sealOne(f, e, s.topic, s.value)
		seeds = append(seeds, r)
		if s.topic == "docs" {
			sealed[s.topic+"\x00"+string(r.Value)] = true
			continue
		}
		var doc map[string]any
		_ = json.Unmarshal(r.Value, &doc)
		for path, v := range doc {
			if str, ok := v.(string); ok {
				sealed[s.topic+"\x00"+path+"\x00"+str] = true
			}
		}
	}
	topics := []string{"cards", "noaad", "docs", "raw", "docs_legacy", "nobody"}
	for _, r := range seeds {
		for ti := range topics {
			hk, hv := "", []byte(nil)
			for _, h := range r.Headers {
				hk, hv = h.Key, h.Value
			}
			f.Add(uint8(ti), r.Value, hk, hv, true)
		}
	}
	f.Add(uint8(0), append([]byte(`{"Name":`), bytes.Repeat([]byte("["), 100000)...), HeaderFields, []byte(`{"v":1,"f":[]}`), false)
	f.Fuzz(func(t *testing.T, ti uint8, value []byte, hk string, hv []byte, sealedHeaders bool) {
		topic := topics[int(ti)%len(topics)]
		rec := Record{Topic: topic, Key: []byte("k"), Value: value, Headers: []Header{{Key: hk, Value: hv}}}
		if sealedHeaders {
			for _, s := range seeds {
				if bytes.Equal(s.Value, value) {
					rec.Headers = append(rec.Headers, s.Headers...)
				}
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		start := time.Now()
		out, err := e.Decrypt(ctx, []Record{rec})
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("one record took %s", d)
		}
		if err != nil {
			t.Fatalf("whole-call error on the in-memory KMS: %v", err)
		}
		o := out[0]
		switch o.Status {
		case StatusDecrypted, StatusPartial:
		default:
			if !bytes.Equal(o.Value, value) {
				t.Fatalf("status %s but the value changed", o.Status)
			}
			return
		}
		if topic == "docs" {
			if !sealed[topic+"\x00"+string(value)] {
				t.Fatalf("envelope record decrypted on %s that was not sealed for it", topic)
			}
			return
		}
		p, _ := e.policies.For(topic)
		sp, lerr := locate(value, policyPaths(p), DefaultMaxDepth)
		if lerr != nil {
			t.Fatalf("decrypted a value locate refuses: %v", lerr)
		}
		for _, fs := range o.Fields {
			// FPE has no integrity (any digits decrypt to digits): only
			// transit fields are authenticated, so only they are checked.
			if fs.Mode != string(policy.Transit) || fs.Status != FieldOK && fs.Status != FieldOKDefaultVersion {
				continue
			}
			for i, pf := range p.Fields {
				if pf.PathString() == fs.Path && !sealed[topic+"\x00"+fs.Path+"\x00"+sp[i].res.Str] {
					t.Fatalf("field %s of %s decrypted from %q, which was not sealed for it", fs.Path, topic, sp[i].res.Str)
				}
			}
		}
	})
}
