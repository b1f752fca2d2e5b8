package server_test

// Hostile records written straight to Kafka (sarama, through kafka.Client,
// never through the API): the reader decides from the topic's policy, and
// no record can crash, stall or fool it.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/kafkagate/kafkagate/internal/consume"

	"github.com/kafkagate/kafkagate/internal/config"
	"github.com/kafkagate/kafkagate/internal/envelope"
	"github.com/kafkagate/kafkagate/internal/fpe"
	"github.com/kafkagate/kafkagate/internal/httpapi"
	"github.com/kafkagate/kafkagate/internal/kafka"
	"github.com/kafkagate/kafkagate/internal/protect"
	"github.com/kafkagate/kafkagate/internal/server"
	"github.com/kafkagate/kafkagate/internal/testkit"
	"github.com/kafkagate/kafkagate/internal/transit"
)

const attackConfig = `
[default]
message.max.bytes = 16777216

[kafkagate]
fpe_refresh = 200ms

[policy:cards]
fields =
    card fpe format=full domain=payments.card_number
    Name transit

[policy:notes]
fields =
    card fpe format=full domain=payments.card_number
    memo transit

[policy:open]
aad = off
fields = memo transit

[policy:secret]
aad = off
fields = memo transit

[policy:payments]
mode = envelope

[policy:raw]
mode = passthrough

[policy:files_legacy]
mode = passthrough
legacy = accept
`

// startCardStack starts a stack for the configuration text with the
// payments.card_number FPE domain and the envelope KEK in Vault.
func startCardStack(t *testing.T, text string) (*testkit.Env, *config.File) {
	t.Helper()
	env := testkit.Start(t)
	cfg := testkit.Config(t, text)
	testkit.EnsureFPEDomains(t, env, cfg, "payments.card_number")
	testkit.EnsureEnvelopeKEK(t, env)
	return env, cfg
}

// fullCardToken tokenises card with f's payments.card_number key in format
// full, returning the token and the key version.
func fullCardToken(t *testing.T, f *fixture, card string) (string, int) {
	t.Helper()
	format, err := fpe.ParseFormat("full", "")
	if err != nil {
		t.Fatal(err)
	}
	tok, ver, err := f.gw.FPEKeys.Service().Encrypt("payments.card_number", format, card)
	if err != nil {
		t.Fatal(err)
	}
	return tok, ver
}

func setupAttack(t *testing.T) *fixture {
	t.Helper()
	env, cfg := startCardStack(t, attackConfig)
	for _, k := range []string{envelope.DefaultLegacyKEK, "kafka-secret"} {
		if err := env.Transit.EnsureKey(context.Background(), k, transit.KeySpec{}); err != nil {
			t.Fatal(err)
		}
	}
	return serve(t, env, server.Options{Config: cfg, Vault: testkit.RootVault(env, 3*time.Second)})
}

// write produces msgs straight to Kafka, bypassing the API.
func (f *fixture) write(t *testing.T, msgs ...kafka.Message) {
	t.Helper()
	if _, err := f.gw.Kafka.Produce(context.Background(), msgs); err != nil {
		t.Fatal(err)
	}
}

// produceOK posts one JSON value through the API and fails the test on
// anything but 200.
func (f *fixture) produceOK(t *testing.T, topic, value string) {
	t.Helper()
	if resp, b := f.post(t, f.url(topic), "application/json", `{"partition_id":0,"value":{"type":"JSON","data":`+value+`}}`); resp.StatusCode != 200 {
		t.Fatalf("produce to %s: %d %s", topic, resp.StatusCode, b)
	}
}

func fieldsHeader(h string) []kafka.Header {
	return []kafka.Header{{Key: protect.HeaderFields, Value: []byte(h)}}
}

// decryptionOf reads partition 0 of topic over HTTP from offset 0.
func decryptionOf(t *testing.T, f *fixture, topic string) []httpapi.ReadRecord {
	t.Helper()
	return f.read(t, topic, 0, 0).Records
}

// readAtLeast reads partition 0 of topic over HTTP until it returns n
// records (bounded at 60 s).
func readAtLeast(t *testing.T, f *fixture, topic string, n int) []httpapi.ReadRecord {
	t.Helper()
	recs := decryptionOf(t, f, topic)
	for deadline := time.Now().Add(60 * time.Second); len(recs) < n && time.Now().Before(deadline); {
		time.Sleep(200 * time.Millisecond)
		recs = decryptionOf(t, f, topic)
	}
	return recs
}

// TestAttackDeepNestingPoisonRecord: a value of 8 MiB of '[' used to kill
// the gateway with a stack overflow in gjson's recursive validation. Every
// read path now reports that record failed (too_deep) and serves the next.
func TestAttackDeepNestingPoisonRecord(t *testing.T) {
	f := setupAttack(t)
	poison := append([]byte(`{"Name":`), bytes.Repeat([]byte{'['}, 8<<20)...)
	f.write(t,
		kafka.Message{Topic: "cards", Partition: 0, Value: poison},
		kafka.Message{Topic: "raw", Partition: 0, Value: poison, Headers: fieldsHeader(`{"v":1,"f":[]}`)},
	)
	f.produceOK(t, "cards", `{"Name":"Ann Example","card":"4111-1111-1111-1111"}`)

	// Stateless GET. A read returns what the broker hands over within its
	// wait; the 8 MiB record may take more than one on a loaded machine.
	recs := readAtLeast(t, f, "cards", 2)
	if len(recs) != 2 {
		t.Fatalf("GET: %d records", len(recs))
	}
	if d := recs[0].Decryption; d.Status != "failed" || d.Code != protect.CodeTooDeep {
		t.Fatalf("poison record: %+v", d)
	}
	if d := recs[1].Decryption; d.Status != "decrypted" || !strings.Contains(string(recs[1].Value.Data), "Ann Example") {
		t.Fatalf("next record: %+v %s", d, recs[1].Value.Data)
	}
	raw := readAtLeast(t, f, "raw", 1)
	if d := raw[0].Decryption; d.Status != "failed" || d.Code != protect.CodeNotAllowed {
		t.Fatalf("poison with a fields header on a passthrough topic: %+v", d)
	}

	// The stream.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, f.url("cards")+":stream?max=2", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("stream: %d", resp.StatusCode)
	}
	var statuses []string
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 32<<20)
	for sc.Scan() && len(statuses) < 2 {
		var r httpapi.StreamRecord
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("stream line: %v", err)
		}
		statuses = append(statuses, r.Decryption.Status+"/"+r.Decryption.Code)
	}
	if fmt.Sprint(statuses) != "[failed/too_deep decrypted/]" {
		t.Fatalf("stream statuses %v", statuses)
	}

	// The decrypting consumer.
	var got []string
	_, err = consume.Run(context.Background(), f.gw.Kafka, f.gw.Engine, consume.Options{Topic: "cards", Partition: -1, Offset: -2},
		func(r consume.Line) error { got = append(got, r.Decryption.Status); return nil })
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != "[failed decrypted]" {
		t.Fatalf("consume statuses %v", got)
	}
}

// TestAttackCrossTopicOracle: a token or ciphertext copied from another
// topic, with a header forged to name that topic's key, AAD setting or FPE
// domain, never decrypts for a reader of the topic it was copied into.
func TestAttackCrossTopicOracle(t *testing.T) {
	f := setupAttack(t)
	const card, memo = "4111-1111-1111-1111", "the vault code is 1234"
	f.produceOK(t, "cards", `{"Name":"Ann","card":"`+card+`"}`)
	f.produceOK(t, "secret", `{"memo":"`+memo+`"}`)
	cards := f.raw(t, "cards")[0]
	secret := f.raw(t, "secret")[0]
	var cdoc, sdoc map[string]string
	if err := json.Unmarshal(cards.Value, &cdoc); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(secret.Value, &sdoc); err != nil {
		t.Fatal(err)
	}
	token := cdoc["card"]
	cardsHdr := headerValue(cards.Headers, protect.HeaderFields)
	var ch struct {
		F []map[string]any `json:"f"`
	}
	if err := json.Unmarshal([]byte(cardsHdr), &ch); err != nil {
		t.Fatal(err)
	}
	var fpeEntry map[string]any
	for _, e := range ch.F {
		if e["m"] == "fpe" {
			fpeEntry = e
		}
	}
	if fpeEntry == nil || fpeEntry["b"] != float64(1) {
		t.Fatalf("new fpe tokens must be bound to their topic: header %s", cardsHdr)
	}
	unbound := map[string]any{}
	for k, v := range fpeEntry {
		if k != "b" {
			unbound[k] = v
		}
	}
	enc := func(v any) string { b, _ := json.Marshal(v); return string(b) }
	f.write(t,
		// The FPE token moved to notes (same domain), header as written.
		kafka.Message{Topic: "notes", Partition: 0, Value: []byte(`{"card":"` + token + `"}`), Headers: fieldsHeader(`{"v":1,"f":[` + enc(fpeEntry) + `]}`)},
		// The same, claiming an unbound (pre-binding) token.
		kafka.Message{Topic: "notes", Partition: 0, Value: []byte(`{"card":"` + token + `"}`), Headers: fieldsHeader(`{"v":1,"f":[` + enc(unbound) + `]}`)},
		// An aad=off ciphertext of topic secret, header naming its key.
		kafka.Message{Topic: "notes", Partition: 0, Value: []byte(`{"memo":"` + sdoc["memo"] + `"}`), Headers: fieldsHeader(`{"v":1,"f":[{"p":"memo","m":"transit","k":"kafka-secret"}]}`)},
		// The same into open, whose policy also has aad = off.
		kafka.Message{Topic: "open", Partition: 0, Value: []byte(`{"memo":"` + sdoc["memo"] + `"}`), Headers: fieldsHeader(`{"v":1,"f":[{"p":"memo","m":"transit","k":"kafka-secret"}]}`)},
		// Into open, header rewritten to open's own key: Vault refuses.
		kafka.Message{Topic: "open", Partition: 0, Value: []byte(`{"memo":"` + sdoc["memo"] + `"}`), Headers: fieldsHeader(`{"v":1,"f":[{"p":"memo","m":"transit","k":"kafka-open"}]}`)},
	)
	f.produceOK(t, "open", `{"memo":"fine"}`) // creates kafka-open for the case above
	notes := decryptionOf(t, f, "notes")
	open := decryptionOf(t, f, "open")
	for i, r := range append(notes, open...) {
		if strings.Contains(string(r.Value.Data), card) || strings.Contains(string(r.Value.Data), memo) || strings.Contains(string(r.Value.Data), "41111111") {
			t.Fatalf("record %d: plaintext of another topic leaked: %s", i, r.Value.Data)
		}
	}
	// The bound token decrypts to digits that are not the card (FPE has
	// no integrity): status reports it, but nothing leaks.
	if notes[2].Decryption.Status != "failed" || notes[2].Decryption.Code != protect.CodeNotAllowed {
		t.Fatalf("foreign transit key in notes: %+v", notes[2].Decryption)
	}
	if open[0].Decryption.Status != "failed" || open[0].Decryption.Code != protect.CodeNotAllowed {
		t.Fatalf("foreign transit key in open: %+v", open[0].Decryption)
	}
	if open[1].Decryption.Status != "failed" || open[1].Decryption.Fields[0].Status != protect.CodeDecryptFailed {
		t.Fatalf("ciphertext of kafka-secret under kafka-open: %+v", open[1].Decryption)
	}
	if open[2].Decryption.Status != "decrypted" {
		t.Fatalf("genuine record of open: %+v", open[2].Decryption)
	}
	// Engine level, with the typed cause.
	opened, err := f.gw.Engine.Decrypt(context.Background(), []protect.Record{
		{Topic: "notes", Value: []byte(`{"memo":"` + sdoc["memo"] + `"}`), Headers: []protect.Header{{Key: protect.HeaderFields, Value: []byte(`{"v":1,"f":[{"p":"memo","m":"transit","k":"kafka-secret"}]}`)}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if !errors.Is(opened[0].Err, protect.ErrNotAllowed) {
		t.Fatalf("want ErrNotAllowed, got %v", opened[0].Err)
	}
}

// TestAttackForgedHeaderNeverDecrypted: a record claiming to have no
// encrypted fields (or naming fields the policy encrypts while holding
// them in clear) is never reported as decrypted, and a fields record on an
// envelope topic is refused; consume's --require-encrypted option refuses
// both.
func TestAttackForgedHeaderNeverDecrypted(t *testing.T) {
	f := setupAttack(t)
	iban := `{"Name":"Mallory","card":"4111-1111-1111-1111","iban":"XX00 ATTACKER"}`
	f.write(t,
		kafka.Message{Topic: "cards", Partition: 0, Value: []byte(iban), Headers: fieldsHeader(`{"v":1,"f":[]}`)},
		kafka.Message{Topic: "payments", Partition: 0, Value: []byte(iban), Headers: fieldsHeader(`{"v":1,"f":[]}`)},
		kafka.Message{Topic: "cards", Partition: 0, Value: []byte(`{"iban":"XX00 ATTACKER"}`), Headers: fieldsHeader(`{"v":1,"f":[]}`)},
	)
	cards := decryptionOf(t, f, "cards")
	if d := cards[0].Decryption; d.Status != "failed" {
		t.Fatalf("policy fields in clear under an empty header: %+v", d)
	}
	for _, fs := range cards[0].Decryption.Fields {
		if fs.Status != protect.CodeNotEncrypted {
			t.Errorf("%s: %s, want %s", fs.Path, fs.Status, protect.CodeNotEncrypted)
		}
	}
	if d := cards[1].Decryption; d.Status != "unencrypted" {
		t.Fatalf("no policy field at all: %+v", d)
	}
	pay := decryptionOf(t, f, "payments")
	if d := pay[0].Decryption; d.Status != "failed" || d.Code != protect.CodeNotAllowed {
		t.Fatalf("fields record on an envelope topic: %+v", d)
	}
	var consumed []consume.Line
	for _, topic := range []string{"cards", "payments"} {
		_, err := consume.Run(context.Background(), f.gw.Kafka, f.gw.Engine, consume.Options{Topic: topic, Partition: -1, Offset: -2},
			func(r consume.Line) error { consumed = append(consumed, r); return nil })
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(consumed) != 3 {
		t.Fatalf("consumed %d records", len(consumed))
	}
	for _, r := range consumed {
		if s := r.Decryption.Status; s == string(protect.StatusDecrypted) || s == string(protect.StatusPartial) {
			t.Fatalf("forged record reported %s", s)
		}
		if !consume.RequireEncryptedRefuses(r) {
			t.Fatalf("--require-encrypted lets %+v through", r.Decryption)
		}
	}
}

// TestAttackForeignKeyFailsAlone: a header naming a key outside the
// policy fails only its own record, before Vault; the records around it
// decrypt and the read answers 200.
func TestAttackForeignKeyFailsAlone(t *testing.T) {
	f := setupAttack(t)
	f.produceOK(t, "cards", `{"Name":"Ann","card":"4111-1111-1111-1111"}`)
	good := f.raw(t, "cards")[0]
	var doc map[string]string
	_ = json.Unmarshal(good.Value, &doc)
	f.write(t, kafka.Message{Topic: "cards", Partition: 0, Value: []byte(`{"Name":"` + doc["Name"] + `"}`),
		Headers: fieldsHeader(`{"v":1,"f":[{"p":"Name","m":"transit","k":"vault-policy-forbids-this","a":1}]}`)})
	f.produceOK(t, "cards", `{"Name":"Bob","card":"4111-1111-1111-1111"}`)
	recs := decryptionOf(t, f, "cards")
	want := []string{"decrypted", "failed", "decrypted"}
	for i, r := range recs {
		if r.Decryption.Status != want[i] {
			t.Fatalf("record %d: %+v", i, r.Decryption)
		}
	}
	if recs[1].Decryption.Code != protect.CodeNotAllowed || recs[1].Decryption.Fields != nil && len(recs[1].Decryption.Fields) > 0 && recs[1].Decryption.Fields[0].Status == protect.CodeVaultRefused {
		t.Fatalf("forged key: %+v", recs[1].Decryption)
	}
}

// TestAttackLegacyRecordOnOtherTopic: the original demo's file records
// open only where the policy sets legacy = accept.
func TestAttackLegacyRecordOnOtherTopic(t *testing.T) {
	f := setupAttack(t)
	ctx := context.Background()
	hs, value, err := envelope.EncodeLegacy(ctx, envelope.NewTransitKeys(f.env.Transit), envelope.DefaultLegacyKEK, "salaries.csv", []byte("alice,100000\n"))
	if err != nil {
		t.Fatal(err)
	}
	f.write(t,
		kafka.Message{Topic: "raw", Partition: 0, Value: value, Headers: hs},
		kafka.Message{Topic: "cards", Partition: 0, Value: value, Headers: hs},
		kafka.Message{Topic: "files_legacy", Partition: 0, Value: value, Headers: hs},
	)
	for _, topic := range []string{"raw", "cards"} {
		r := decryptionOf(t, f, topic)[0]
		if r.Decryption.Status != "failed" || r.Decryption.Code != protect.CodeNotAllowed || strings.Contains(string(r.Value.Data), "alice") {
			t.Fatalf("legacy record on %s: %+v", topic, r.Decryption)
		}
	}
	r := decryptionOf(t, f, "files_legacy")[0]
	if r.Decryption.Status != "decrypted" {
		t.Fatalf("legacy record where the policy accepts it: %+v", r.Decryption)
	}
}

// TestRecordsWrittenBeforeBindingStillRead: an fpe token written before
// tokens were bound to their topic (no "b" in the header, no topic in the
// tweak) still decrypts on its own topic; with untweaked=refuse it is
// refused before any key is used.
func TestRecordsWrittenBeforeBindingStillRead(t *testing.T) {
	f := setupAttack(t)
	const card = "4111-1111-1111-1111"
	tok, ver := fullCardToken(t, f, card)
	hdr := fmt.Sprintf(`{"v":1,"f":[{"p":"card","m":"fpe","d":"payments.card_number","n":%d,"fmt":"full"}]}`, ver)
	f.write(t, kafka.Message{Topic: "cards", Partition: 0, Value: []byte(`{"card":"` + tok + `"}`), Headers: fieldsHeader(hdr)})
	r := decryptionOf(t, f, "cards")[0]
	if r.Decryption.Status != "decrypted" || !strings.Contains(string(r.Value.Data), card) {
		t.Fatalf("unbound token on its own topic: %+v %s", r.Decryption, r.Value.Data)
	}
	// The same token read with a bound header is another permutation: no card.
	f.write(t, kafka.Message{Topic: "cards", Partition: 0, Value: []byte(`{"card":"` + tok + `"}`), Headers: fieldsHeader(strings.Replace(hdr, `"fmt":"full"`, `"fmt":"full","b":1`, 1))})
	r = decryptionOf(t, f, "cards")[1]
	if strings.Contains(string(r.Value.Data), card) {
		t.Fatalf("an unbound token read as bound gave the card: %s", r.Value.Data)
	}
}
