package server_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509/pkix"
	"encoding/json"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/kafkagate/kafkagate/internal/access"
	"github.com/kafkagate/kafkagate/internal/access/sasl"
	"github.com/kafkagate/kafkagate/internal/server"
	"github.com/kafkagate/kafkagate/internal/testkit"
)

// proxySASLConfig adds to testConfig: docs is sealed whole, peek returns
// the ciphertext as stored to a principal without the consume right
// (purchases answers it an authorization error).
const proxySASLConfig = testConfig + `
[policy:docs]
mode = envelope

[policy:peek]
transit_key = kafka-purchases
fields = Name transit, Address transit, credit_card transit
fetch_denied = stored
`

// saslLine is the access file line of a SASL user with password pw.
func saslLine(t *testing.T, user, pw, principal, rights string) string {
	t.Helper()
	creds, err := sasl.NewCredentials(pw, 4096)
	if err != nil {
		t.Fatal(err)
	}
	grants, err := access.ParseGrants(rights)
	if err != nil {
		t.Fatal(err)
	}
	return access.SASLLine(user, creds, principal, grants)
}

// proxyWithSASL serves a gateway's Kafka proxy with SASL from an access
// file holding the users app (every right on the three topics) and spy
// (produce only); it returns the gateway and the proxy's address.
func proxyWithSASL(t *testing.T, logs *testkit.SyncBuffer) (*server.Gateway, string) {
	t.Helper()
	env := testkit.Start(t)
	testkit.EnsureEnvelopeKEK(t, env)
	file := testkit.WriteFile(t, t.TempDir(), "access", strings.Join([]string{
		saslLine(t, "app", "app-Pa55word", "app", "produce:purchases produce:docs produce:peek consume:purchases consume:docs consume:peek"),
		saslLine(t, "spy", "spy-Pa55word", "spy", "produce:peek"),
	}, "\n"))
	gw := testkit.Gateway(t, env, server.Options{
		Config: testkit.Config(t, proxySASLConfig+"\n[kafkagate]\naccess_file = "+file+"\n"),
		Vault:  testkit.RootVault(env, 3*time.Second),
		Logger: slog.New(slog.NewTextHandler(logs, nil)),
	})
	o, ok, err := gw.ProxyAuth()
	if err != nil || !ok {
		t.Fatalf("proxy auth: %v %v", ok, err)
	}
	return gw, testkit.StartProxy(t, gw, o)
}

func proxyPurchase(client string, i int) []byte {
	return []byte(fmt.Sprintf(`{"Name":"Ann %s %d","Address":"%d Main St","credit_card":"4111-2222-3333-%04d","tier":"gold"}`, client, i, i, i))
}

// sameJSON compares JSON values whatever their key order.
func sameJSON(t *testing.T, got, want []byte) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("read %q: %v", got, err)
	}
	_ = json.Unmarshal(want, &w)
	if !reflect.DeepEqual(g, w) {
		t.Fatalf("read %s, want %s", got, want)
	}
}

// TestProxySASLOutsideClients: kcat, python3-confluent-kafka and KafkaJS
// log in to the proxy with SASL (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512),
// produce (the broker holds ciphertext and none of the plaintext) and
// consume back the plaintext in a group, committing; wrong credentials
// are refused and store nothing; a principal without the consume right
// never sees plaintext.
func TestProxySASLOutsideClients(t *testing.T) {
	logs := &testkit.SyncBuffer{}
	gw, proxy := proxyWithSASL(t, logs)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("gateway log:\n%s", logs.String())
		}
	})
	mechs := map[string]string{"kcat": "PLAIN", "python-confluent-kafka": "SCRAM-SHA-256", "kafkajs": "SCRAM-SHA-512"}
	ctx := context.Background()
	stored := map[string]int{}
	for _, mk := range testkit.OutsideClients() {
		t.Run(mk.Name, func(t *testing.T) {
			c := mk.New(t)
			app := testkit.ClientConn{Bootstrap: proxy, SASL: &testkit.ClientSASL{Mechanism: mechs[mk.Name], Username: "app", Password: "app-Pa55word"}}
			spy := testkit.ClientConn{Bootstrap: proxy, Timeout: 20 * time.Second, SASL: &testkit.ClientSASL{Mechanism: mechs[mk.Name], Username: "spy", Password: "spy-Pa55word"}}

			// Fields mode: the secret fields are stored as vault:vN:.
			var fields []testkit.ClientMessage
			for i := 0; i < 3; i++ {
				fields = append(fields, testkit.ClientMessage{Key: []byte(fmt.Sprintf("%s-%d", mk.Name, i)), Value: proxyPurchase(mk.Name, i)})
			}
			if err := c.Produce(ctx, app, "purchases", fields); err != nil {
				t.Fatal(err)
			}
			stored["purchases"] += len(fields)
			assertNoPlaintext(t, gw, "purchases", stored["purchases"], "vault:v", "Ann "+mk.Name, "4111-2222-3333", "Main St")
			got, err := c.Consume(ctx, app, "purchases", "g-"+mk.Name, stored["purchases"])
			if err != nil {
				t.Fatal(err)
			}
			byKey := map[string][]byte{}
			for _, m := range got {
				byKey[string(m.Key)] = m.Value
			}
			for _, m := range fields {
				sameJSON(t, byKey[string(m.Key)], m.Value)
			}
			if n := committedCount(t, gw, "g-"+mk.Name, "purchases"); n != int64(stored["purchases"]) {
				t.Fatalf("group committed %d, read %d", n, stored["purchases"])
			}

			// Envelope mode: the value is sealed whole, read back byte for byte.
			doc := []byte("contract of " + mk.Name + "\x00\xff binary tail")
			if err := c.Produce(ctx, app, "docs", []testkit.ClientMessage{{Key: []byte("doc-" + mk.Name), Value: doc}}); err != nil {
				t.Fatal(err)
			}
			stored["docs"]++
			assertNoPlaintext(t, gw, "docs", stored["docs"], "", "contract of")
			got, err = c.Consume(ctx, app, "docs", "gd-"+mk.Name, stored["docs"])
			if err != nil {
				t.Fatal(err)
			}
			found := false
			for _, m := range got {
				found = found || string(m.Key) == "doc-"+mk.Name && bytes.Equal(m.Value, doc)
			}
			if !found {
				t.Fatalf("the envelope record did not read back: %+v", got)
			}

			// Wrong password, unknown user: refused, nothing stored.
			for _, bad := range []testkit.ClientSASL{{Mechanism: mechs[mk.Name], Username: "app", Password: "app-Pa55wore"}, {Mechanism: mechs[mk.Name], Username: "nobody", Password: "app-Pa55word"}} {
				conn := testkit.ClientConn{Bootstrap: proxy, Timeout: 20 * time.Second, SASL: &bad}
				if err := c.Produce(ctx, conn, "purchases", fields[:1]); err == nil {
					t.Fatalf("%s as %s with a wrong password produced", bad.Mechanism, bad.Username)
				}
			}
			if n := len(testkit.Stored(t, gw.Kafka, "purchases")); n != stored["purchases"] {
				t.Fatalf("a refused login stored records: %d, want %d", n, stored["purchases"])
			}

			// Without the consume right: an error on purchases, the stored
			// ciphertext on peek (fetch_denied = stored), never plaintext.
			if got, err := c.Consume(ctx, spy, "purchases", "gs-"+mk.Name, 1); err == nil {
				t.Fatalf("spy read purchases: %+v", got)
			}
			peek := testkit.ClientMessage{Key: []byte("peek-" + mk.Name), Value: proxyPurchase("peek"+mk.Name, 9)}
			if err := c.Produce(ctx, spy, "peek", []testkit.ClientMessage{peek}); err != nil {
				t.Fatal(err)
			}
			stored["peek"]++
			got, err = c.Consume(ctx, spy, "peek", "gp-"+mk.Name, stored["peek"])
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range got {
				if bytes.Contains(m.Value, []byte("Ann peek")) || bytes.Contains(m.Value, []byte("4111-2222")) || !bytes.Contains(m.Value, []byte("vault:v")) {
					t.Fatalf("spy read %q", m.Value)
				}
			}
		})
	}
	for _, secret := range []string{"app-Pa55word", "app-Pa55wore", "spy-Pa55word", "4111-2222"} {
		if strings.Contains(logs.String(), secret) {
			t.Fatalf("the log holds %q", secret)
		}
	}
	if !strings.Contains(logs.String(), "sasl authentication failed") {
		t.Fatalf("refused logins were not logged:\n%s", logs.String())
	}
}

// assertNoPlaintext reads topic straight from the broker: n records, each
// holding marker (when set) and none of the secrets.
func assertNoPlaintext(t *testing.T, gw *server.Gateway, topic string, n int, marker string, secrets ...string) {
	t.Helper()
	recs := testkit.Stored(t, gw.Kafka, topic)
	if len(recs) != n {
		t.Fatalf("%s: %d records stored, want %d", topic, len(recs), n)
	}
	for _, r := range recs {
		if c := gw.Engine.Classify(r); c.Err != nil {
			t.Fatalf("%s offset %d: %v", topic, r.Offset, c.Err)
		}
		if marker != "" && !bytes.Contains(r.Value, []byte(marker)) {
			t.Fatalf("%s offset %d: no %q in %q", topic, r.Offset, marker, r.Value)
		}
		for _, s := range secrets {
			if bytes.Contains(r.Value, []byte(s)) {
				t.Fatalf("%s offset %d: plaintext %q stored", topic, r.Offset, s)
			}
		}
	}
}

// committedCount sums a group's committed offsets on topic, read from
// the broker directly.
func committedCount(t *testing.T, gw *server.Gateway, group, topic string) int64 {
	t.Helper()
	admin := testkit.Admin(t, gw.Kafka.Settings().Brokers)
	resp, err := admin.ListConsumerGroupOffsets(group, nil)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, b := range resp.Blocks[topic] {
		n += max(b.Offset, 0)
	}
	return n
}

// TestProxyMutualTLS: with tls_cert and tls_client_ca the proxy speaks
// TLS on every port; a client certificate named by a cert line is that
// principal without SASL, a verified certificate without a line still
// needs SASL, and a plaintext client gets nowhere.
func TestProxyMutualTLS(t *testing.T) {
	env := testkit.Start(t)
	dir := t.TempDir()
	tt := testkit.ServerTLS(t, dir, "clients", "proxy", "proxy")
	ca := tt.CA
	file := testkit.WriteFile(t, dir, "access", strings.Join([]string{
		"cert CN=bridge bridge produce:purchases consume:purchases",
		saslLine(t, "app", "app-Pa55word", "app", "produce:purchases"),
	}, "\n"))
	gw := testkit.Gateway(t, env, server.Options{
		Config: testkit.Config(t, testConfig+"\n[kafkagate]\naccess_file = "+file+"\ntls_cert = "+tt.Cert+"\ntls_key = "+tt.Key+"\ntls_client_ca = "+tt.CAFile+"\n"),
		Vault:  testkit.RootVault(env, 3*time.Second),
	})
	o, authed, err := gw.ProxyAuth()
	if err != nil || !authed || o.TLS == nil {
		t.Fatalf("proxy auth: %v %v %v", authed, o.TLS, err)
	}
	proxy := testkit.StartProxy(t, gw, o)
	issue := func(cn string) tls.Certificate {
		return testkit.ClientCert(t, ca, pkix.Name{CommonName: cn})
	}
	config := func(cert *tls.Certificate, user, pw string) *sarama.Config {
		c := testkit.SaramaConfig()
		c.Metadata.Retry.Max = 1
		if cert != nil {
			c.Net.TLS.Enable = true
			c.Net.TLS.Config = &tls.Config{RootCAs: ca.Pool(), Certificates: []tls.Certificate{*cert}}
		}
		if user != "" {
			c.Net.SASL.Enable, c.Net.SASL.Mechanism, c.Net.SASL.Version = true, sarama.SASLTypePlaintext, sarama.SASLHandshakeV1
			c.Net.SASL.User, c.Net.SASL.Password = user, pw
		}
		return c
	}
	produce := func(c *sarama.Config, value string) error {
		sp, err := sarama.NewSyncProducer([]string{proxy}, c)
		if err != nil {
			return err
		}
		defer sp.Close()
		_, _, err = sp.SendMessage(&sarama.ProducerMessage{Topic: "purchases", Partition: 0, Value: sarama.StringEncoder(value)})
		return err
	}
	bridge, stranger := issue("bridge"), issue("stranger")
	if err := produce(config(&bridge, "", ""), `{"Name":"Bridge Secret"}`); err != nil {
		t.Fatalf("bridge (cert line): %v", err)
	}
	if err := produce(config(&stranger, "", ""), `{"Name":"Stranger Secret"}`); err == nil {
		t.Fatal("a certificate without a cert line produced without SASL")
	}
	if err := produce(config(&stranger, "app", "app-Pa55word"), `{"Name":"App Secret"}`); err != nil {
		t.Fatalf("SASL over TLS: %v", err)
	}
	if err := produce(config(nil, "app", "app-Pa55word"), `{"Name":"Plain Secret"}`); err == nil {
		t.Fatal("a plaintext client produced through the TLS proxy")
	}
	assertNoPlaintext(t, gw, "purchases", 2, "vault:v", "Secret")
	// bridge reads the plaintext back through the proxy.
	cons, err := sarama.NewConsumer([]string{proxy}, config(&bridge, "", ""))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	pc, err := cons.ConsumePartition("purchases", 0, sarama.OffsetOldest)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	var got []string
	for len(got) < 2 {
		select {
		case m := <-pc.Messages():
			got = append(got, string(m.Value))
		case err := <-pc.Errors():
			t.Fatal(err)
		case <-time.After(30 * time.Second):
			t.Fatalf("read %q", got)
		}
	}
	if !strings.Contains(got[0], `"Bridge Secret"`) || !strings.Contains(got[1], `"App Secret"`) {
		t.Fatalf("read %q", got)
	}
}
