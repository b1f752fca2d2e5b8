package server_test

import (
	"context"
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kafkagate/kafkagate/internal/core"
	"github.com/kafkagate/kafkagate/internal/fpe/vaultkeyring"
	"github.com/kafkagate/kafkagate/internal/httpapi"
	"github.com/kafkagate/kafkagate/internal/kafka"
	"github.com/kafkagate/kafkagate/internal/protect"
	"github.com/kafkagate/kafkagate/internal/server"
	"github.com/kafkagate/kafkagate/internal/testkit"
)

const fpeConfig = `
[kafkagate]
fpe_refresh = 200ms

[policy:cards]
fields =
    credit_card fpe format=full domain=payments.card_number
    masked      fpe format=keep-bin-last4 domain=payments.card_number
    Name        transit

[policy:legacy_cards]
fields = credit_card fpe format=full domain=payments.card_number default_version=2

[policy:unprovisioned]
fields = credit_card fpe domain=nobody.home
`

func setupFPE(t *testing.T, provision bool) (*fixture, *vaultkeyring.Keyring) {
	t.Helper()
	env := testkit.Start(t)
	cfg := testkit.Config(t, fpeConfig)
	kr := vaultkeyring.New(env.VC, core.KeyringOptions(cfg))
	ctx := context.Background()
	if err := kr.EnsureKEK(ctx); err != nil {
		t.Fatal(err)
	}
	if provision {
		if _, err := kr.Ensure(ctx, "payments.card_number"); err != nil {
			t.Fatal(err)
		}
	}
	return serve(t, env, server.Options{Config: cfg, Vault: testkit.RootVault(env, 3*time.Second)}), kr
}

func luhn(s string) bool {
	sum, dbl := 0, false
	for i := len(s) - 1; i >= 0; i-- {
		c := s[i]
		if c < '0' || c > '9' {
			continue
		}
		d := int(c - '0')
		if dbl {
			if d *= 2; d > 9 {
				d -= 9
			}
		}
		sum += d
		dbl = !dbl
	}
	return sum%10 == 0
}

func TestFPEFieldsRoundTripAndRotation(t *testing.T) {
	f, kr := setupFPE(t, true)
	card, masked := "2516-2848-6785-9087", "5425 2334 3010 9903"
	body := `{"partition_id":0,"value":{"type":"JSON","data":{"Name":"Ann","credit_card":"` + card + `","masked":"` + masked + `"}}}`
	resp, b := f.post(t, f.url("cards"), "application/json", body)
	if resp.StatusCode != 200 || !strings.Contains(string(b), `"domain":"payments.card_number"`) {
		t.Fatalf("%d %s", resp.StatusCode, b)
	}
	raw := f.raw(t, "cards")[0]
	var stored map[string]string
	if err := json.Unmarshal(raw.Value, &stored); err != nil {
		t.Fatal(err)
	}
	got := stored["credit_card"]
	if got == card || !regexp.MustCompile(`^\d{4}-\d{4}-\d{4}-\d{4}$`).MatchString(got) || !luhn(got) {
		t.Fatalf("full mode stored %q for %q: want another Luhn-valid card of the same shape", got, card)
	}
	m := stored["masked"]
	if m == masked || len(m) != len(masked) || m[:7] != masked[:7] || m[len(m)-4:] != masked[len(masked)-4:] || m[4] != ' ' || !luhn(m) {
		t.Fatalf("keep-bin-last4 stored %q for %q", m, masked)
	}
	if strings.Contains(string(raw.Value), "Ann") || !strings.HasPrefix(stored["Name"], "vault:v1:") {
		t.Fatalf("transit field beside fpe fields: %s", raw.Value)
	}
	hdr := headerValue(raw.Headers, protect.HeaderFields)
	if !strings.Contains(hdr, `"p":"credit_card","m":"fpe","d":"payments.card_number","n":1,"fmt":"full"`) {
		t.Fatalf("header: %s", hdr)
	}

	// Rotate the FPE key; the gateway's refresher picks up v2 (200 ms).
	if v, err := kr.Rotate(context.Background(), "payments.card_number"); err != nil || v != 2 {
		t.Fatalf("rotate: %d %v", v, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, b = f.post(t, f.url("cards"), "application/json", body)
		if resp.StatusCode != 200 {
			t.Fatalf("%d %s", resp.StatusCode, b)
		}
		if strings.Contains(string(b), `"key_version":2`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("rotation not picked up: %s", b)
		}
		time.Sleep(100 * time.Millisecond)
	}
	rr := f.read(t, "cards", 0, 0)
	if len(rr.Records) < 2 {
		t.Fatalf("%d records", len(rr.Records))
	}
	first, last := rr.Records[0], rr.Records[len(rr.Records)-1]
	for _, r := range []httpapi.ReadRecord{first, last} {
		if r.Decryption.Status != "decrypted" {
			t.Fatalf("status %s: %+v", r.Decryption.Status, r.Decryption.Fields)
		}
		var v map[string]string
		_ = json.Unmarshal(r.Value.Data, &v)
		if v["credit_card"] != card || v["masked"] != masked || v["Name"] != "Ann" {
			t.Fatalf("decrypted %v", v)
		}
	}
	if first.Decryption.Fields[0].KeyVersion != 1 || last.Decryption.Fields[0].KeyVersion != 2 {
		t.Fatalf("versions %d, %d", first.Decryption.Fields[0].KeyVersion, last.Decryption.Fields[0].KeyVersion)
	}

	// A record without the header (another producer, which tokenises
	// with the domain's key and no topic binding) is decrypted with the
	// policy's default_version (2, current since the rotation above), and
	// its field status says so. A token of
	// topic cards copied there is bound to cards and does not give the card.
	tok, _ := fullCardToken(t, f, card)
	if _, err := f.gw.Kafka.Produce(context.Background(), []kafka.Message{
		{Topic: "legacy_cards", Partition: 0, Value: []byte(`{"credit_card":"` + tok + `"}`)},
		{Topic: "legacy_cards", Partition: 0, Value: []byte(`{"credit_card":"` + firstToken(t, f) + `"}`)},
	}); err != nil {
		t.Fatal(err)
	}
	lrs := f.read(t, "legacy_cards", 0, 0).Records
	lr := lrs[0]
	if lr.Decryption.Status != "decrypted" || lr.Decryption.Fields[0].Status != protect.FieldOKDefaultVersion || !strings.Contains(string(lr.Value.Data), card) {
		t.Fatalf("headerless record: %s %+v %s", lr.Decryption.Status, lr.Decryption.Fields, lr.Value.Data)
	}
	if strings.Contains(string(lrs[1].Value.Data), card) {
		t.Fatalf("a token of topic cards copied to legacy_cards gave the card: %s", lrs[1].Value.Data)
	}
}

// firstToken is the v1 token of the first record of topic cards.
func firstToken(t *testing.T, f *fixture) string {
	t.Helper()
	var stored map[string]string
	_ = json.Unmarshal(f.raw(t, "cards")[0].Value, &stored)
	return stored["credit_card"]
}

func headerValue(hs []kafka.Header, key string) string {
	for _, h := range hs {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

func TestFPEBadInputRefused(t *testing.T) {
	f, _ := setupFPE(t, true)
	for name, card := range map[string]string{
		"letters":      `"2516-2848-678A-9087"`,
		"plus sign":    `"+2516284867859087"`,
		"minus sign":   `"-2516284867859087"`,
		"empty":        `""`,
		"too short":    `"4111-1111"`,
		"too long":     `"41111111111111111111111"`,
		"not luhn":     `"2516-2848-6785-9088"`,
		"double sep":   `"2516--2848-6785-9087"`,
		"json number":  `2516284867859087`,
		"json boolean": `true`,
	} {
		t.Run(name, func(t *testing.T) {
			resp, b := f.post(t, f.url("cards"), "application/json", `{"value":{"type":"JSON","data":{"credit_card":`+card+`}}}`)
			var e errBody
			_ = json.Unmarshal(b, &e)
			want := httpapi.CodeFieldInvalid
			if strings.HasPrefix(name, "json") {
				want = httpapi.CodeFieldType
			}
			if resp.StatusCode != 200 || e.ErrorCode != want || e.Field != "credit_card" { // the record's report
				t.Fatalf("%d %s", resp.StatusCode, b)
			}
			if strings.Contains(e.Message, "2516") {
				t.Fatalf("message leaks digits: %s", e.Message)
			}
		})
	}
	if n := len(f.raw(t, "cards")); n != 0 {
		t.Fatalf("%d records produced from refused requests", n)
	}
}

func TestFPEUnprovisionedDomainFailsClosed(t *testing.T) {
	f, _ := setupFPE(t, false)
	resp, b := f.post(t, f.url("unprovisioned"), "application/json", `{"value":{"type":"JSON","data":{"credit_card":"2516-2848-6785-9087"}}}`)
	var e errBody
	_ = json.Unmarshal(b, &e)
	if resp.StatusCode != 503 || e.ErrorCode != httpapi.CodeVaultKeyMissing || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("%d %s", resp.StatusCode, b)
	}
	if n := len(f.raw(t, "unprovisioned")); n != 0 {
		t.Fatalf("%d records produced", n)
	}
}
