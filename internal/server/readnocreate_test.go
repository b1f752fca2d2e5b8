package server_test

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/kafkagate/kafkagate/internal/httpapi"
	"github.com/kafkagate/kafkagate/internal/testkit"
)

// TestReadUnknownTopicDoesNotCreateIt: kfake allows auto-creation (as
// Apache Kafka does by default). GET .../records of a topic that does not
// exist — with a policy or without — answers 404 40403 and leaves the
// topic absent; a partition a topic lacks is 404 40403 too; producing to
// a new policy topic still creates it, and the read then decrypts.
func TestReadUnknownTopicDoesNotCreateIt(t *testing.T) {
	f := setup(t)
	get := func(topic, query string) (int, errBody) {
		t.Helper()
		resp, b := testkit.Do(t, nil, http.MethodGet, f.url(topic)+query, "", "")
		var e errBody
		if resp.StatusCode != http.StatusOK {
			if err := json.Unmarshal(b, &e); err != nil {
				t.Fatalf("GET %s: %d %s", topic, resp.StatusCode, b)
			}
		}
		return resp.StatusCode, e
	}
	for _, topic := range []string{"nope", "other"} { // "other" has a policy
		for _, q := range []string{"", "?partition=0&offset=0&max=5", "?partition=2"} {
			code, e := get(topic, q)
			if code != http.StatusNotFound || e.ErrorCode != httpapi.CodeTopicNotFound {
				t.Fatalf("GET %s%s: %d %+v, want 404 %d", topic, q, code, e, httpapi.CodeTopicNotFound)
			}
		}
		if testkit.TopicExists(t, f.gw.Kafka, topic) {
			t.Fatalf("GET records created topic %s", topic)
		}
	}

	// Producing to a new policy topic still auto-creates it.
	if resp, body := f.post(t, f.url("other"), "application/json", produceBody(purchase)); resp.StatusCode != http.StatusOK {
		t.Fatalf("produce to new topic other: %d %s", resp.StatusCode, body)
	}
	if !testkit.TopicExists(t, f.gw.Kafka, "other") {
		t.Fatal("producing did not create topic other")
	}
	stored := f.raw(t, "other")
	if len(stored) != 1 {
		t.Fatalf("other holds %d records, want 1", len(stored))
	}
	rr := f.read(t, "other", stored[0].Partition, 0)
	if len(rr.Records) != 1 || rr.Records[0].Decryption.Status != "decrypted" {
		t.Fatalf("read back: %+v", rr)
	}
	assertJSONEqual(t, purchase, string(rr.Records[0].Value.Data))
	if code, e := get("other", "?partition=9"); code != http.StatusNotFound || e.ErrorCode != httpapi.CodeTopicNotFound {
		t.Fatalf("GET other partition 9: %d %+v", code, e)
	}
}
