package filetransfer

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kafkagate/kafkagate/internal/envelope"
	"github.com/kafkagate/kafkagate/internal/kafka"
	"github.com/kafkagate/kafkagate/internal/testkit/demorules"
	"github.com/kafkagate/kafkagate/internal/transit"
)

// TestLegacyGoldenVectorViaKafka produces the legacy golden vector (made by
// gen_legacy.py with Python's cryptography, as producer_file_transfer.py
// does) with its data key wrapped by this Vault's transit key "transit",
// and receives it: the file is written as received-<name>, as the original
// consumer did, with the vector's bytes.
func TestLegacyGoldenVectorViaKafka(t *testing.T) {
	te := newTestEnv(t)
	b, err := os.ReadFile("../envelope/testdata/legacy.json")
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		DEK     string `json:"dek"`
		Headers []struct {
			Key   string `json:"key"`
			Value string `json:"value"`
		} `json:"headers"`
		DataHex string `json:"data_hex"`
		Value   string `json:"value"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	dek, _ := hex.DecodeString(v.DEK)
	data, _ := hex.DecodeString(v.DataHex)
	// The vector's wrapped key is not a real Vault ciphertext: wrap the
	// vector's DEK with transit/encrypt/transit, which transit/decrypt
	// (what the receiver calls) turns back into the DEK.
	sealed, err := te.Transit.Encrypt(context.Background(), envelope.DefaultLegacyKEK, []transit.Item{{Plaintext: dek}})
	if err != nil || sealed[0].Err != nil {
		t.Fatalf("wrap: %v %v", err, sealed[0].Err)
	}
	var hs []envelope.Header
	for _, h := range v.Headers {
		val := []byte(h.Value)
		if h.Key == envelope.LegacyKeyHeader {
			val = []byte(sealed[0].Ciphertext)
		}
		hs = append(hs, envelope.Header{Key: h.Key, Value: val})
	}
	topic := newTopic("legacy")
	te.produceRaw(t, []envelope.Record{{Topic: topic, Headers: hs, Value: []byte(v.Value)}}, 0)
	dir := filepath.Join(t.TempDir(), "in")
	out := te.receiveOnce(t, topic, dir, recvOpts{})
	if len(out.files) != 1 || len(out.quarantined) != 0 {
		t.Fatalf("files %+v, quarantined %+v", out.files, out.quarantined)
	}
	got := out.files[0]
	if got.Path != filepath.Join(dir, "received-large-set-of-info.json") || got.Format != envelope.FormatLegacy {
		t.Fatalf("received %+v", got)
	}
	if disk, _ := os.ReadFile(got.Path); !bytes.Equal(disk, data) {
		t.Fatal("received bytes differ from the vector")
	}
}

// consumeLikeTheDemo decrypts a legacy message exactly as
// consumer_file_transfer.py does, without the envelope package: require
// X-filename and X-encryptionkey, unwrap the key with
// transit/decrypt/transit (no context), then
// b64decode(AES-GCM(key, b64decode(nonce)).decrypt_and_verify(fromhex(ct), fromhex(tag))).
func consumeLikeTheDemo(t *testing.T, tc *transit.Client, rec kafka.Record) (string, []byte) {
	t.Helper()
	h := map[string]string{}
	for _, x := range rec.Headers {
		h[x.Key] = string(x.Value)
	}
	name, okName := h["X-filename"]
	wrapped, okKey := h["X-encryptionkey"]
	if !okName || !okKey || len(rec.Headers) != 2 || rec.Key != nil {
		t.Fatalf("not the demo's message shape: key %q headers %v", rec.Key, rec.Headers)
	}
	return name, demorules.OpenFile(t, tc, wrapped, rec.Value)
}

// TestSendLegacy: a file sent with SendLegacy is one message the original
// consumer's rules decrypt, receive-dir writes it as received-<name>, and
// a file too large for one message is refused before anything is produced.
func TestSendLegacy(t *testing.T) {
	te := newTestEnv(t)
	topic := newTopic("legacysend")
	s := te.sender(t, 0)
	data := []byte(strings.Repeat(`{"value": "Ada Lovelace", "transformation": "name"}`+"\n", 5000))
	res, err := s.SendLegacy(context.Background(), File{Topic: topic, Name: "large-set-of-info.json", Body: bytes.NewReader(data), Size: int64(len(data))})
	if err != nil {
		t.Fatal(err)
	}
	if res.Chunks != 1 || res.Format != envelope.FormatLegacy || res.FileID != "" {
		t.Fatalf("result %+v", res)
	}
	recs, err := te.kc.Read(context.Background(), topic, res.Partition, res.FirstOffset, 1)
	if err != nil || len(recs) != 1 {
		t.Fatalf("read: %v (%d records)", err, len(recs))
	}
	if name, got := consumeLikeTheDemo(t, te.Transit, recs[0]); name != "large-set-of-info.json" || !bytes.Equal(got, data) {
		t.Fatalf("the demo's rules recovered %q, %d bytes", name, len(got))
	}
	// Where the topic's policy does not accept legacy records, the message
	// is quarantined as not-allowed and never unwrapped.
	refused := te.receiveOnce(t, topic, filepath.Join(t.TempDir(), "refused"), recvOpts{refuseLegacy: true, group: "refuse-legacy"})
	if len(refused.files) != 0 || len(refused.quarantined) != 1 || refused.quarantined[0].Why.Reason != ReasonNotAllowed {
		t.Fatalf("legacy record without legacy = accept: files %+v, quarantined %+v", refused.files, refused.quarantined)
	}
	dir := filepath.Join(t.TempDir(), "in")
	out := te.receiveOnce(t, topic, dir, recvOpts{})
	if len(out.files) != 1 || filepath.Base(out.files[0].Path) != "received-large-set-of-info.json" {
		t.Fatalf("received %+v", out.files)
	}

	// Too large: refused with a clear error, nothing produced.
	max := MaxLegacyFileBytes(te.settings.Sarama.Producer.MaxMessageBytes, "big.bin")
	if max < 3_000_000 || max > 3_200_000 {
		t.Fatalf("legacy limit %d at 8 MiB", max)
	}
	before := te.records(t, topic)
	_, err = s.SendLegacy(context.Background(), File{Topic: topic, Name: "big.bin", Body: bytes.NewReader(make([]byte, max+1)), Size: max + 1})
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "without --legacy-format") {
		t.Fatalf("too large: %v", err)
	}
	if after := te.records(t, topic); after != before {
		t.Fatalf("refused file produced something: %d -> %d records", before, after)
	}
	// Exactly at the limit it fits the broker.
	if _, err := s.SendLegacy(context.Background(), File{Topic: topic, Name: "big.bin", Body: bytes.NewReader(make([]byte, max)), Size: max}); err != nil {
		t.Fatalf("at the limit: %v", err)
	}
}
