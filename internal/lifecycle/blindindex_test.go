package lifecycle_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	"github.com/kafkagate/kafkagate/internal/devenv"
	"github.com/kafkagate/kafkagate/internal/httpapi"
	"github.com/kafkagate/kafkagate/internal/lifecycle"
	"github.com/kafkagate/kafkagate/internal/protect"
	"github.com/kafkagate/kafkagate/internal/testkit"
)

const indexConfig = `
[policy:customers]
fields =
    email   transit index=hmac
    Name    transit

[policy:customers_v2]
transit_key = kafka-customers
index_key = kafkagate-index-customers
fields =
    email   transit index=hmac
    Name    transit
`

// TestBlindIndex: equal values get equal indexes and different values
// different ones, the index is neither the value nor its unkeyed hash, the
// read endpoint filters by it (header Kafkagate-Index-Filter), and a
// rewrap after rotating the index key re-indexes under the new version.
func TestBlindIndex(t *testing.T) {
	env := testkit.Start(t)
	ctx := context.Background()
	gw, srv := provisionedGateway(t, env, indexConfig)
	cfg := gw.Config
	base := srv.URL + "/v3/clusters/" + testkit.ClusterID(t, gw) + "/topics/"
	produceEmails(t, base+"customers/records")
	raw, err := gw.Kafka.Read(ctx, "customers", 0, -2, 100)
	if err != nil || len(raw) != len(emails) {
		t.Fatalf("read raw: %d records, %v", len(raw), err)
	}
	idx := make([]string, len(raw))
	for i, r := range raw {
		idx[i] = gjson.GetBytes(r.Value, "email_bidx").String()
		ct := gjson.GetBytes(r.Value, "email").String()
		if !strings.HasPrefix(idx[i], "vault:v1:") || !strings.HasPrefix(ct, "vault:v1:") {
			t.Fatalf("record %d: %s", i, r.Value)
		}
		mac := strings.TrimPrefix(idx[i], "vault:v1:")
		sum := sha256.Sum256([]byte(emails[i]))
		for _, leak := range []string{emails[i], "ann", "example", hex.EncodeToString(sum[:]), base64.StdEncoding.EncodeToString(sum[:])} {
			if strings.Contains(string(r.Value), leak) || mac == leak {
				t.Fatalf("record %d leaks %q: %s", i, leak, r.Value)
			}
		}
	}
	distinct := map[string]string{}
	for i, e := range emails {
		if prev, ok := distinct[e]; ok && prev != idx[i] {
			t.Fatalf("equal values %q, different indexes %s and %s", e, prev, idx[i])
		}
		distinct[e] = idx[i]
	}
	if len(map[string]bool{distinct[emails[0]]: true, distinct[emails[1]]: true, distinct[emails[3]]: true}) != 3 {
		t.Fatalf("different values share an index: %v", distinct)
	}

	filtered := func(topic, filter string) (int, []string, []byte) {
		t.Helper()
		req, _ := http.NewRequest("GET", base+topic+"/records?partition=0&offset=0&max=100", nil)
		req.Header.Set(httpapi.HeaderIndexFilter, filter)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var rr httpapi.ReadResponse
		var b json.RawMessage
		_ = json.NewDecoder(resp.Body).Decode(&b)
		_ = json.Unmarshal(b, &rr)
		var names []string
		for _, r := range rr.Records {
			if r.Decryption.Status != string(protect.StatusDecrypted) {
				t.Fatalf("filtered record %d: %s", r.Offset, r.Decryption.Status)
			}
			names = append(names, gjson.GetBytes(r.Value.Data, "email").String()+"/"+gjson.GetBytes(r.Value.Data, "Name").String())
		}
		if resp.StatusCode == 200 && rr.NextOffset != int64(len(emails)) {
			t.Fatalf("filtered read: next_offset %d, want %d", rr.NextOffset, len(emails))
		}
		return resp.StatusCode, names, b
	}
	st, names, _ := filtered("customers", "email="+url.QueryEscape("ann@example.com"))
	if st != 200 || fmt.Sprint(names) != "[ann@example.com/person 0 ann@example.com/person 2 ann@example.com/person 4]" {
		t.Fatalf("filter ann: %d %v", st, names)
	}
	if st, names, _ = filtered("customers", "email=nobody%40example.com"); st != 200 || len(names) != 0 {
		t.Fatalf("filter nobody: %d %v", st, names)
	}
	st, _, b := filtered("customers", "Name=person+1")
	if st != 400 || errorCode(t, b) != httpapi.CodeBadQuery || !strings.Contains(string(b), httpapi.HeaderIndexFilter) {
		t.Fatalf("filter on a field without index: %d %s", st, b)
	}
	t.Logf("6 records, 3 distinct emails -> %d distinct indexes; filter ann -> 3 records", len(map[string]bool{idx[0]: true, idx[1]: true, idx[3]: true}))

	// Rotate the index key, rewrap: the copy is indexed under v2 and the
	// filter finds it there.
	if _, err := env.Transit.Rotate(ctx, "kafkagate-index-customers"); err != nil {
		t.Fatal(err)
	}
	target, _ := cfg.Policies.For("customers_v2")
	rep, err := lifecycle.Rewrap(ctx, gw.Kafka, gw.Engine, lifecycle.RewrapOptions{From: "customers", To: "customers_v2", Target: target})
	if err != nil || rep.Written != len(emails) {
		t.Fatalf("rewrap: %v %+v", err, rep)
	}
	inv, err := lifecycle.TakeInventory(ctx, gw.Kafka, gw.Engine, "customers_v2", lifecycle.InventoryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(inv.Versions(protect.UseIndex, "kafkagate-index-customers")) != "[2]" {
		t.Fatalf("index versions after rewrap: %+v", inv.Uses)
	}
	if st, names, _ = filtered("customers_v2", "email=bob%40example.com"); st != 200 || len(names) != 2 {
		t.Fatalf("filter bob on the copy: %d %v", st, names)
	}
}

// TestBlindIndexStream: the streaming read takes the same index filter as
// the stateless GET: only matching records are decrypted and sent, max
// counts the records sent, a group resumes after the records it skipped,
// and a field without index=hmac is refused before the stream opens.
// emails are the index field of the records produceEmails writes: three
// distinct values, "ann@example.com" three times.
var emails = []string{"ann@example.com", "bob@example.com", "ann@example.com", "cy@example.com", "ann@example.com", "bob@example.com"}

// produceEmails posts one record per email (field email, Name "person i")
// to partition 0 through the records endpoint url.
func produceEmails(t *testing.T, url string) {
	t.Helper()
	for i, e := range emails {
		body := fmt.Sprintf(`{"partition_id":0,"value":{"type":"JSON","data":{"email":%q,"Name":"person %d"}}}`, e, i)
		if st, b := do(t, "POST", url, body); st != 200 {
			t.Fatalf("produce: %d %s", st, b)
		}
	}
}

func TestBlindIndexStream(t *testing.T) {
	env := testkit.StartWith(t, devenv.KafkaOptions{Partitions: 1, FastGroups: true})
	ctx := context.Background()
	gw, srv := provisionedGateway(t, env, indexConfig)
	base := srv.URL + "/v3/clusters/" + testkit.ClusterID(t, gw) + "/topics/customers/"
	produceEmails(t, base+"records")
	stream := func(query, filter string) (int, []string) {
		t.Helper()
		rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(rctx, "GET", base+"records:stream"+query, nil)
		req.Header.Set(httpapi.HeaderIndexFilter, filter)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body) // ends by itself after max records
		if err != nil {
			t.Fatalf("%s: %v (%s)", query, err, b)
		}
		if resp.StatusCode != 200 {
			return resp.StatusCode, []string{string(b)}
		}
		var got []string
		for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			var r httpapi.StreamRecord
			if err := json.Unmarshal([]byte(line), &r); err != nil || r.Decryption.Status != string(protect.StatusDecrypted) {
				t.Fatalf("%s: line %q: %v", query, line, err)
			}
			got = append(got, fmt.Sprintf("%d:%s", r.Offset, gjson.GetBytes(r.Value.Data, "email").String()))
		}
		return 200, got
	}
	if st, got := stream("?partition=0&offset=0&max=3", "email="+url.QueryEscape("ann@example.com")); st != 200 ||
		fmt.Sprint(got) != "[0:ann@example.com 2:ann@example.com 4:ann@example.com]" {
		t.Fatalf("stream filter ann: %d %v", st, got)
	}
	// A group: the first stream sends one bob and marks what it skipped,
	// the second resumes after it.
	if st, got := stream("?group=bi&from_beginning=true&max=1", "email=bob%40example.com"); st != 200 || fmt.Sprint(got) != "[1:bob@example.com]" {
		t.Fatalf("group stream 1: %d %v", st, got)
	}
	if st, got := stream("?group=bi&max=1", "email=bob%40example.com"); st != 200 || fmt.Sprint(got) != "[5:bob@example.com]" {
		t.Fatalf("group stream 2: %d %v", st, got)
	}
	st, got := stream("?partition=0&offset=0&max=1", "Name=person+1")
	if st != 400 || errorCode(t, []byte(got[0])) != httpapi.CodeBadQuery || !strings.Contains(got[0], httpapi.HeaderIndexFilter) {
		t.Fatalf("stream filter on a field without index: %d %v", st, got)
	}
	t.Logf("stream filter ann (max 3) -> offsets 0,2,4; group stream bob max 1 -> 1, then resumes -> 5; Name filter -> 400/%d", httpapi.CodeBadQuery)
}
