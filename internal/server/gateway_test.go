package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/kafkagate/kafkagate/internal/consume"

	"github.com/kafkagate/kafkagate/internal/devenv"
	"github.com/kafkagate/kafkagate/internal/httpapi"
	"github.com/kafkagate/kafkagate/internal/kafka"
	"github.com/kafkagate/kafkagate/internal/protect"
	"github.com/kafkagate/kafkagate/internal/server"
	"github.com/kafkagate/kafkagate/internal/testkit"
	"github.com/kafkagate/kafkagate/internal/transit"
)

const testConfig = `
[default]
bootstrap.servers = unused:9092
client.id = kafkagate-test

` + purchasesPolicy + `
[policy:other]
transit_key = kafka-purchases
fields = Name transit, Address transit, credit_card transit

[policy:noaad]
aad = off
fields = Address transit

[policy:raw]
mode = passthrough
`

// purchasesPolicy encrypts the four secret fields of purchase.
const purchasesPolicy = `
[policy:purchases]
transit_key = kafka-{topic}
fields =
    Name           transit
    Address        transit
    credit_card    transit
    customer.email transit
`

type fixture struct {
	env *testkit.Env
	gw  *server.Gateway
	srv *httptest.Server
	cid string
}

func setup(t *testing.T) *fixture {
	t.Helper()
	env := testkit.Start(t)
	return serve(t, env, server.Options{Config: testkit.Config(t, testConfig), Vault: testkit.RootVault(env, 3*time.Second)})
}

// serve assembles a gateway on env (testkit.Gateway) and serves its API;
// both stop with t.
func serve(t *testing.T, env *testkit.Env, o server.Options) *fixture {
	t.Helper()
	gw := testkit.Gateway(t, env, o)
	return &fixture{env: env, gw: gw, srv: testkit.ServeAPI(t, gw), cid: testkit.ClusterID(t, gw)}
}

func (f *fixture) url(topic string) string {
	return f.srv.URL + "/v3/clusters/" + f.cid + "/topics/" + topic + "/records"
}

func (f *fixture) post(t *testing.T, url, ctype, body string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	return testkit.Call(t, nil, req)
}

// raw reads every record of a topic as stored (no decryption).
func (f *fixture) raw(t *testing.T, topic string) []kafka.Record {
	t.Helper()
	return testkit.Stored(t, f.gw.Kafka, topic)
}

const purchase = `{"Name":"Ann Example","Address":"1 Main St, Springfield","credit_card":"2516-2848-6785-9087","customer":{"email":"ann@example.com","tier":"gold"},"extra":[1,{"k":"v"}],"note":null}`

var secrets = []string{"Ann Example", "1 Main St, Springfield", "2516-2848-6785-9087", "ann@example.com"}

func produceBody(value string) string {
	return `{"key":{"type":"STRING","data":"k1"},"headers":[{"name":"trace","value":"YWJj"}],"value":{"type":"JSON","data":` + value + `}}`
}

func TestProduceEncryptsAndReadDecrypts(t *testing.T) {
	f := setup(t)
	resp, body := f.post(t, f.url("purchases"), "application/json", produceBody(purchase))
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	var pr struct {
		ErrorCode   int    `json:"error_code"`
		ClusterID   string `json:"cluster_id"`
		TopicName   string `json:"topic_name"`
		PartitionID int32  `json:"partition_id"`
		Offset      int64  `json:"offset"`
		Value       struct {
			Type string `json:"type"`
			Size int    `json:"size"`
		} `json:"value"`
		Encryption struct {
			Fields []protect.FieldInfo `json:"fields"`
		} `json:"encryption"`
	}
	if err := json.Unmarshal(body, &pr); err != nil {
		t.Fatal(err)
	}
	if pr.ErrorCode != 200 || pr.ClusterID != f.cid || pr.TopicName != "purchases" || pr.Value.Type != "JSON" {
		t.Fatalf("unexpected produce response: %s", body)
	}
	wantPaths := []string{"Name", "Address", "credit_card", "customer.email"}
	if len(pr.Encryption.Fields) != len(wantPaths) {
		t.Fatalf("encryption fields: %+v", pr.Encryption.Fields)
	}
	for i, fi := range pr.Encryption.Fields {
		if fi.Path != wantPaths[i] || fi.Mode != "transit" || fi.Key != "kafka-purchases" || fi.KeyVersion != 1 {
			t.Errorf("field %d: %+v", i, fi)
		}
	}

	// Raw record in Kafka: ciphertext only.
	recs := f.raw(t, "purchases")
	if len(recs) != 1 {
		t.Fatalf("want 1 record in kafka, got %d", len(recs))
	}
	rec := recs[0]
	if pr.Value.Size != len(rec.Value) {
		t.Errorf("value.size %d, want the %d bytes written to Kafka", pr.Value.Size, len(rec.Value))
	}
	for _, s := range secrets {
		if bytes.Contains(rec.Value, []byte(s)) {
			t.Errorf("plaintext %q found in the stored record", s)
		}
	}
	var stored map[string]any
	if err := json.Unmarshal(rec.Value, &stored); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"Name", "Address", "credit_card"} {
		if s, _ := stored[k].(string); !strings.HasPrefix(s, "vault:v1:") {
			t.Errorf("stored %s = %q, want vault:v1:...", k, s)
		}
	}
	if s, _ := stored["customer"].(map[string]any)["email"].(string); !strings.HasPrefix(s, "vault:v1:") {
		t.Errorf("nested field not encrypted: %v", stored["customer"])
	}
	if stored["customer"].(map[string]any)["tier"] != "gold" || stored["note"] != nil || stored["extra"] == nil {
		t.Errorf("unknown fields not preserved: %s", rec.Value)
	}
	if string(rec.Key) != "k1" {
		t.Errorf("key = %q", rec.Key)
	}
	var hdrs []string
	for _, h := range rec.Headers {
		hdrs = append(hdrs, h.Key)
	}
	if strings.Join(hdrs, ",") != "trace,kafkagate.type,kafkagate.fields" {
		t.Errorf("headers = %v", hdrs)
	}

	// Decrypting GET returns the original JSON.
	got := f.read(t, "purchases", rec.Partition, 0)
	if len(got.Records) != 1 {
		t.Fatalf("GET returned %d records", len(got.Records))
	}
	r0 := got.Records[0]
	if r0.Decryption.Status != "decrypted" {
		t.Fatalf("status %q: %+v", r0.Decryption.Status, r0.Decryption)
	}
	assertJSONEqual(t, purchase, string(r0.Value.Data))
	if got.NextOffset != 1 {
		t.Errorf("next_offset = %d", got.NextOffset)
	}

	// The CLI's consume path (consume.Run) returns the same.
	var lines []consume.Line
	n, err := consume.Run(context.Background(), f.gw.Kafka, f.gw.Engine, consume.Options{Topic: "purchases", Partition: -1, Offset: -2}, func(r consume.Line) error {
		lines = append(lines, r)
		return nil
	})
	if err != nil || n != 1 {
		t.Fatalf("consume: n=%d err=%v", n, err)
	}
	assertJSONEqual(t, purchase, string(lines[0].Value.Data))
}

func (f *fixture) read(t *testing.T, topic string, partition int32, offset int64) httpapi.ReadResponse {
	t.Helper()
	resp, b := testkit.Do(t, nil, http.MethodGet, fmt.Sprintf("%s?partition=%d&offset=%d&max=100", f.url(topic), partition, offset), "", "")
	if resp.StatusCode != 200 {
		t.Fatalf("GET status %d: %s", resp.StatusCode, b)
	}
	var rr httpapi.ReadResponse
	if err := json.Unmarshal(b, &rr); err != nil {
		t.Fatal(err)
	}
	return rr
}

func assertJSONEqual(t *testing.T, want, got string) {
	t.Helper()
	var a, b any
	if err := json.Unmarshal([]byte(want), &a); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(got), &b); err != nil {
		t.Fatalf("not JSON: %s", got)
	}
	aj, _ := json.Marshal(a)
	bj, _ := json.Marshal(b)
	if !bytes.Equal(aj, bj) {
		t.Fatalf("JSON differs:\nwant %s\n got %s", aj, bj)
	}
}

func TestRotationOldAndNewRecordsDecrypt(t *testing.T) {
	f := setup(t)
	body := produceBody(`{"Name":"Before","Address":"a","credit_card":"1"}`)
	if resp, b := f.post(t, f.url("purchases"), "application/json", `{"partition_id":0,`+body[1:]); resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, b)
	}
	v, err := f.env.Transit.Rotate(context.Background(), "kafka-purchases")
	if err != nil || v != 2 {
		t.Fatalf("rotate: v=%d err=%v", v, err)
	}
	resp, b := f.post(t, f.url("purchases"), "application/json", `{"partition_id":0,`+produceBody(`{"Name":"After","Address":"b","credit_card":"2"}`)[1:])
	if resp.StatusCode != 200 || !strings.Contains(string(b), `"key_version":2`) {
		t.Fatalf("%d %s", resp.StatusCode, b)
	}
	recs := f.raw(t, "purchases")
	if len(recs) != 2 {
		t.Fatalf("want 2 records, got %d", len(recs))
	}
	if !bytes.Contains(recs[0].Value, []byte(`"vault:v1:`)) || !bytes.Contains(recs[1].Value, []byte(`"vault:v2:`)) {
		t.Fatalf("versions not as expected:\n%s\n%s", recs[0].Value, recs[1].Value)
	}
	got := f.read(t, "purchases", 0, 0)
	if len(got.Records) != 2 {
		t.Fatalf("got %d records", len(got.Records))
	}
	for i, name := range []string{"Before", "After"} {
		r := got.Records[i]
		if r.Decryption.Status != "decrypted" || !strings.Contains(string(r.Value.Data), `"Name":"`+name+`"`) {
			t.Errorf("record %d: %s %s", i, r.Decryption.Status, r.Value.Data)
		}
		if r.Decryption.Fields[0].KeyVersion != i+1 {
			t.Errorf("record %d: key version %d", i, r.Decryption.Fields[0].KeyVersion)
		}
	}
}

// TestAADBindsTopicAndField moves ciphertexts to another field and to
// another topic (same key) and checks decryption fails with a typed error.
func TestAADBindsTopicAndField(t *testing.T) {
	f := setup(t)
	if resp, b := f.post(t, f.url("purchases"), "application/json", `{"partition_id":0,`+produceBody(`{"Name":"Ann","Address":"1 Main St","credit_card":"4111"}`)[1:]); resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, b)
	}
	orig := f.raw(t, "purchases")[0]
	var doc map[string]any
	_ = json.Unmarshal(orig.Value, &doc)
	// Swap Name and Address ciphertexts; keep the header.
	doc["Name"], doc["Address"] = doc["Address"], doc["Name"]
	swapped, _ := json.Marshal(doc)
	hdrs := []kafka.Header{}
	for _, h := range orig.Headers {
		if h.Key == protect.HeaderFields {
			hdrs = append(hdrs, h)
		}
	}
	ctx := context.Background()
	if _, err := f.gw.Kafka.Produce(ctx, []kafka.Message{
		{Topic: "purchases", Partition: 0, Value: swapped, Headers: hdrs},
		{Topic: "other", Partition: 0, Value: orig.Value, Headers: hdrs}, // same key, other topic
	}); err != nil {
		t.Fatal(err)
	}
	moved := f.raw(t, "purchases")[1]
	other := f.raw(t, "other")[0]
	opened, err := f.gw.Engine.Decrypt(ctx, []protect.Record{
		{Topic: "purchases", Value: orig.Value, Headers: orig.Headers},
		{Topic: "purchases", Value: moved.Value, Headers: moved.Headers},
		{Topic: "other", Value: other.Value, Headers: other.Headers},
	})
	if err != nil {
		t.Fatal(err)
	}
	if opened[0].Status != protect.StatusDecrypted {
		t.Fatalf("original: %s", opened[0].Status)
	}
	if opened[1].Status != protect.StatusPartial {
		t.Fatalf("swapped fields: status %s", opened[1].Status)
	}
	for _, fs := range opened[1].Fields[:2] {
		if fs.Status != protect.CodeDecryptFailed || !errors.Is(fs.Err, transit.ErrDecrypt) {
			t.Errorf("swapped %s: status %s err %v", fs.Path, fs.Status, fs.Err)
		}
	}
	if opened[1].Fields[2].Status != protect.FieldOK {
		t.Errorf("untouched credit_card: %s", opened[1].Fields[2].Status)
	}
	if opened[2].Status != protect.StatusFailed {
		t.Fatalf("other topic: status %s", opened[2].Status)
	}
	for _, fs := range opened[2].Fields {
		if !errors.Is(fs.Err, transit.ErrDecrypt) {
			t.Errorf("other topic %s: %v", fs.Path, fs.Err)
		}
	}
	// Over HTTP the per-record status says the same; a one-record batch in
	// which every item fails still gets per-field results (not a 503).
	got := f.read(t, "other", 0, 0)
	if got.Records[0].Decryption.Status != "failed" || got.Records[0].Decryption.Fields[0].Status != protect.CodeDecryptFailed {
		t.Fatalf("GET other: %+v", got.Records[0].Decryption)
	}
	if strings.Contains(string(got.Records[0].Value.Data), "Ann") {
		t.Fatal("plaintext in a failed record")
	}
}

// TestAADOffVaultCLIDecrypts checks that with aad = off a stored field is
// a plain transit ciphertext that `vault write transit/decrypt/...` opens.
func TestAADOffVaultCLIDecrypts(t *testing.T) {
	f := setup(t)
	if resp, b := f.post(t, f.url("noaad"), "application/json", produceBody(`{"Address":"42 Wallaby Way"}`)); resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, b)
	}
	var doc map[string]string
	_ = json.Unmarshal(f.raw(t, "noaad")[0].Value, &doc)
	bin, err := devenv.FindVault()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "write", "-field=plaintext", "transit/decrypt/kafka-noaad", "ciphertext="+doc["Address"])
	cmd.Env = append(os.Environ(), "VAULT_ADDR="+f.env.Vault.Addr, "VAULT_TOKEN="+f.env.Vault.Token)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("vault CLI: %v: %s", err, out)
	}
	if got := decodeB64(t, strings.TrimSpace(string(out))); got != "42 Wallaby Way" {
		t.Fatalf("vault CLI decrypted %q", got)
	}
	// With AAD on, the same CLI call without associated_data fails.
	if resp, b := f.post(t, f.url("purchases"), "application/json", produceBody(`{"Address":"x"}`)); resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, b)
	}
	var doc2 map[string]string
	_ = json.Unmarshal(f.raw(t, "purchases")[0].Value, &doc2)
	cmd = exec.Command(bin, "write", "-field=plaintext", "transit/decrypt/kafka-purchases", "ciphertext="+doc2["Address"])
	cmd.Env = append(os.Environ(), "VAULT_ADDR="+f.env.Vault.Addr, "VAULT_TOKEN="+f.env.Vault.Token)
	if out, err := cmd.CombinedOutput(); err == nil {
		t.Fatalf("decrypting an AAD-bound field without its AAD succeeded: %s", out)
	}
}
