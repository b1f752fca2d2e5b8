package server_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/kafkagate/kafkagate/internal/consume"

	"github.com/kafkagate/kafkagate/internal/envelope"
	"github.com/kafkagate/kafkagate/internal/fpe/vaultkeyring"
	"github.com/kafkagate/kafkagate/internal/server"
	"github.com/kafkagate/kafkagate/internal/testkit"
	"github.com/kafkagate/kafkagate/internal/transit"
)

const hygieneConfig = `
[policy:t_fields]
fields =
    Name        transit
    credit_card fpe format=full domain=payments.card_number

[policy:t_env]
mode = envelope
dek = per-message
`

// TestLogsCarryNoSecrets runs the produce and read flows (transit, FPE,
// envelope), bad input and a Vault outage with logging at debug level, and
// checks that no plaintext value, data key, FPE key or Vault token appears
// in any log line or error response.
func TestLogsCarryNoSecrets(t *testing.T) {
	env := testkit.Start(t)
	ctx := context.Background()
	cfg := testkit.Config(t, hygieneConfig)
	testkit.EnsureFPEDomains(t, env, cfg, "payments.card_number")
	testkit.EnsureEnvelopeKEK(t, env)
	logs := &testkit.SyncBuffer{}
	f := serve(t, env, server.Options{
		Config: cfg,
		Vault:  testkit.RootVault(env, 2*time.Second),
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	gw := f.gw

	name, card, doc := "Zebulon Quartermaine", "2516-2848-6785-9087", "envelope-plaintext-Xylophone"
	var responses strings.Builder
	post := func(topic, body string) {
		_, b := f.post(t, f.url(topic), "application/json", body)
		responses.Write(b)
	}
	post("t_fields", `{"value":{"type":"JSON","data":{"Name":"`+name+`","credit_card":"`+card+`"}}}`)
	post("t_env", `{"key":{"type":"STRING","data":"k"},"value":{"type":"STRING","data":"`+doc+`"}}`)
	// Bad input that contains secrets.
	post("t_fields", `{"value":{"type":"JSON","data":{"Name":"`+name+`","credit_card":"`+card+`X"}}}`)
	post("t_fields", `{"value":{"type":"JSON","data":{"Name":"`+name+`","Name":"`+name+`"}}}`)
	post("nopolicy", `{"value":{"type":"JSON","data":{"Name":"`+name+`"}}}`)
	for _, topic := range []string{"t_fields", "t_env"} {
		for p := 0; p < 3; p++ {
			resp, err := http.Get(fmt.Sprintf("%s?partition=%d", f.url(topic), p))
			if err == nil {
				resp.Body.Close()
			}
		}
	}
	var read bytes.Buffer
	if _, err := consume.Run(ctx, gw.Kafka, gw.Engine, consume.Options{Topic: "t_fields", Partition: -1, Offset: -2}, func(r consume.Line) error {
		return json.NewEncoder(&read).Encode(r)
	}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(read.String(), name) {
		t.Fatal("the flows did not run: decrypted output lacks the name")
	}

	// Collect the secrets: the FPE key and the envelope DEK, unwrapped here
	// with the root token.
	secrets := map[string]string{"name": name, "card": card, "card digits": strings.ReplaceAll(card, "-", ""), "document": doc, "root token": env.Vault.Token}
	rec, err := env.VC.Read(ctx, "secret/data/kafkagate/fpe/payments.card_number")
	if err != nil {
		t.Fatal(err)
	}
	wrapped := rec["data"].(map[string]any)["v1"].(string)
	un, err := env.Transit.Decrypt(ctx, vaultkeyring.DefaultKEK, []transit.Ciphertext{{Ciphertext: wrapped, Context: []byte("payments.card_number|v1")}})
	if err != nil || un[0].Err != nil {
		t.Fatalf("unwrap fpe key: %v %v", err, un[0].Err)
	}
	secrets["fpe key (base64)"] = base64.StdEncoding.EncodeToString(un[0].Plaintext)
	for _, r := range f.raw(t, "t_env") {
		edek := headerValue(r.Headers, envelope.HeaderEDEK)
		d, err := env.Transit.Decrypt(ctx, envelope.DefaultKEK, []transit.Ciphertext{{Ciphertext: edek, Context: []byte("t_env")}})
		if err != nil || d[0].Err != nil {
			t.Fatalf("unwrap dek: %v", err)
		}
		secrets["dek (base64)"] = base64.StdEncoding.EncodeToString(d[0].Plaintext)
	}
	if secrets["dek (base64)"] == "" {
		t.Fatal("no envelope record to take a DEK from")
	}

	// A Vault outage, whose errors are logged.
	_ = env.Vault.Stop()
	post("t_fields", `{"value":{"type":"JSON","data":{"Name":"`+name+`","credit_card":"`+card+`"}}}`)
	post("t_env", `{"value":{"type":"STRING","data":"`+doc+`"}}`)

	all := logs.String() + responses.String()
	if !strings.Contains(logs.String(), "http request") || !strings.Contains(logs.String(), "level=DEBUG") && !strings.Contains(logs.String(), "level=INFO") {
		t.Fatalf("no log lines captured:\n%s", logs.String())
	}
	for what, s := range secrets {
		if strings.Contains(all, s) {
			t.Errorf("%s appears in logs or error responses", what)
		}
	}
	t.Logf("checked %d log bytes and %d response bytes for %d secrets", len(logs.String()), responses.Len(), len(secrets))
}
