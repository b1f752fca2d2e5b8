package kafkaproxy_test

import (
	"errors"
	"fmt"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/kafkagate/kafkagate/internal/kafka"
	"github.com/kafkagate/kafkagate/internal/kafkaproxy"
	"github.com/kafkagate/kafkagate/internal/protect"
	"github.com/kafkagate/kafkagate/internal/server"
	"github.com/kafkagate/kafkagate/internal/testkit"
)

// TestCodecsThroughProxy: sarama and kcat produce with each compression
// codec through the proxy; the broker holds ciphertext, and sarama and kcat
// read the plaintext back through the proxy.
func TestCodecsThroughProxy(t *testing.T) {
	f := setup(t, server.ProxyOptions{})
	kcat := testkit.Kcat(t)
	codecs := map[string]sarama.CompressionCodec{"none": sarama.CompressionNone, "gzip": sarama.CompressionGZIP,
		"snappy": sarama.CompressionSnappy, "lz4": sarama.CompressionLZ4, "zstd": sarama.CompressionZSTD}
	for name, codec := range codecs {
		// sarama
		topic := "orders"
		cfg := saramaConfig()
		cfg.Producer.Compression = codec
		var want, secrets []string
		for i := range 5 {
			v := strings.Replace(orderValue(i), "Ada", "Sarama-"+name, 1)
			v = strings.Replace(v, "4111-1111", "5500-"+fmt.Sprintf("%04d", len(name)*100+i), 1)
			want = append(want, v)
			secrets = append(secrets, "5500-"+fmt.Sprintf("%04d", len(name)*100+i))
		}
		produceSarama(t, cfg, f.proxy, topic, want...)
		// kcat
		var lines []string
		for i := range 5 {
			v := fmt.Sprintf(`{"id":%d,"name":"Kcat-%s","card":"6011-%s-%04d"}`, i, name, name, i)
			lines = append(lines, v)
			secrets = append(secrets, fmt.Sprintf("6011-%s-%04d", name, i))
		}
		cmd := exec.Command(kcat, "-b", f.proxy, "-t", topic, "-P", "-p", "0", "-z", name, "-X", "linger.ms=50")
		cmd.Stdin = strings.NewReader(strings.Join(lines, "\n") + "\n")
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("kcat -z %s: %v %s", name, err, b)
		}
		want = append(want, lines...)
		stored := testkit.Stored(t, f.gw.Kafka, topic)
		for _, r := range stored {
			for _, s := range secrets {
				if strings.Contains(string(r.Value), s) {
					t.Fatalf("%s: plaintext %q stored", name, s)
				}
			}
		}
		got := map[string]bool{}
		for _, m := range testkit.ReadAll(t, []string{f.proxy}, topic) {
			got[string(m.Value)] = true
		}
		out, err := exec.Command(kcat, "-b", f.proxy, "-t", topic, "-C", "-e", "-p", "0", "-o", "beginning").Output()
		if err != nil {
			t.Fatalf("kcat consume: %v", err)
		}
		for _, w := range want {
			if !got[w] {
				t.Fatalf("%s: sarama through the proxy lacks %s", name, w)
			}
			if !strings.Contains(string(out), w) {
				t.Fatalf("%s: kcat through the proxy lacks %s", name, w)
			}
		}
	}
}

// TestRESTAndProxyReadEachOther: records posted to the REST API read
// through the proxy, and records produced through the proxy read through
// the REST API, decrypted.
func TestRESTAndProxyReadEachOther(t *testing.T) {
	f := setup(t, server.ProxyOptions{})
	cid := testkit.ClusterID(t, f.gw)
	url := f.api + "/v3/clusters/" + cid + "/topics/orders/records"
	body := `{"partition_id":0,"value":{"type":"JSON","data":{"id":1,"name":"Rest","card":"4000-0000-0000-0002"}}}`
	resp, b := testkit.Do(t, http.DefaultClient, http.MethodPost, url, "", body)
	if resp.StatusCode != 200 {
		t.Fatalf("rest produce: %d %s", resp.StatusCode, b)
	}
	produceSarama(t, saramaConfig(), f.proxy, "orders", `{"id":2,"name":"Proxy","card":"4000-0000-0000-0010"}`)
	assertStoredEncrypted(t, f, "orders", 2, "4000-0000-0000-0002", "4000-0000-0000-0010")

	msgs := testkit.ReadAll(t, []string{f.proxy}, "orders")
	if len(msgs) != 2 || !strings.Contains(string(msgs[0].Value), `"card":"4000-0000-0000-0002"`) {
		t.Fatalf("REST record through the proxy: %d records, first %s", len(msgs), msgs[0].Value)
	}
	resp, b = testkit.Do(t, http.DefaultClient, http.MethodGet, url+"?partition=0&offset=0&max=10", "", "")
	if resp.StatusCode != 200 {
		t.Fatalf("rest read: %d %s", resp.StatusCode, b)
	}
	if !strings.Contains(string(b), `"4000-0000-0000-0010"`) || strings.Count(string(b), `"decrypted"`) != 2 {
		t.Fatalf("proxy record through REST: %s", b)
	}
}

// TestProduceRefusals: a topic without a policy, a principal-less topic
// and records the policy refuses get Kafka error codes and nothing is
// stored; a passthrough topic is written as is.
func TestProduceRefusals(t *testing.T) {
	f := setup(t, server.ProxyOptions{})
	cfg := saramaConfig()
	cfg.Producer.Retry.Max = 0
	sp, err := sarama.NewSyncProducer([]string{f.proxy}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	send := func(topic, value string, headers ...sarama.RecordHeader) error {
		_, _, err := sp.SendMessage(&sarama.ProducerMessage{Topic: topic, Partition: 0, Value: sarama.StringEncoder(value), Headers: headers})
		return err
	}
	if err := send("nopolicy", `{"card":"1"}`); !errors.Is(err, sarama.ErrTopicAuthorizationFailed) {
		t.Fatalf("topic without policy: %v", err)
	}
	if err := send("orders", `not json`); !errors.Is(err, sarama.ErrInvalidRecord) {
		t.Fatalf("not JSON: %v", err)
	}
	if err := send("orders", `{"card":12}`); !errors.Is(err, sarama.ErrInvalidRecord) {
		t.Fatalf("card not a string: %v", err)
	}
	if err := send("orders", `{"card":"1"}`, sarama.RecordHeader{Key: []byte("kafkagate.fields"), Value: []byte(`{"v":1,"f":[]}`)}); !errors.Is(err, sarama.ErrInvalidRecord) {
		t.Fatalf("reserved header: %v", err)
	}
	if n := testkit.Records(t, f.gw.Kafka, "orders"); n != 0 {
		t.Fatalf("%d refused records stored", n)
	}
	if testkit.TopicExists(t, f.gw.Kafka, "nopolicy") && testkit.Records(t, f.gw.Kafka, "nopolicy") != 0 {
		t.Fatal("record stored in a topic without policy")
	}
	if err := send("open", `plain text on purpose`); err != nil {
		t.Fatal(err)
	}
	if recs := testkit.Stored(t, f.gw.Kafka, "open"); len(recs) != 1 || string(recs[0].Value) != "plain text on purpose" {
		t.Fatalf("passthrough: %+v", recs)
	}
}

// TestHostileRecordsFetched: records written straight to Kafka that are
// not what the policy says come back through the proxy as stored with a
// status header (fetch_failed = stored), never decrypted, or stop the
// consumer with an error (fetch_failed = error); the proxy keeps serving.
func TestHostileRecordsFetched(t *testing.T) {
	f := setup(t, server.ProxyOptions{})
	good := testkit.Seal(t, f.gw, "orders", []byte(`{"card":"4111-0000-0000-0001"}`))
	hostile := []kafka.Message{
		{Topic: "orders", Partition: 0, Value: []byte(`{"card":"vault:v1:AAAAforgedciphertext"}`), Headers: []kafka.Header{{Key: protect.HeaderFields, Value: []byte(`{"v":1,"f":[{"p":"card","m":"transit","k":"kafka-orders","a":1}]}`)}}},
		{Topic: "orders", Partition: 0, Value: []byte(`{"card":"4111-in-clear"}`)},
		{Topic: "orders", Partition: 0, Value: []byte("\xff\xfe not json"), Headers: []kafka.Header{{Key: protect.HeaderFields, Value: []byte(`garbage`)}}},
	}
	testkit.Produce(t, f.gw.Kafka, good...)
	testkit.Produce(t, f.gw.Kafka, hostile...)
	testkit.Produce(t, f.gw.Kafka, good...)

	msgs := testkit.ReadAll(t, []string{f.proxy}, "orders")
	if len(msgs) != 5 {
		t.Fatalf("%d records through the proxy, want 5", len(msgs))
	}
	for i, m := range msgs {
		status := ""
		for _, h := range m.Headers {
			if string(h.Key) == kafkaproxy.HeaderStatus {
				status = string(h.Value)
			}
		}
		switch i {
		case 0, 4:
			if string(m.Value) != `{"card":"4111-0000-0000-0001"}` || status != "" {
				t.Fatalf("record %d: %q status %q", i, m.Value, status)
			}
		default:
			if string(m.Value) != string(hostile[i-1].Value) || status == "" || status == string(protect.StatusDecrypted) {
				t.Fatalf("hostile record %d: %q status %q", i, m.Value, status)
			}
		}
	}

	// fetch_failed = error: the consumer gets the records before the bad
	// one, then an error at it.
	strict := testkit.Seal(t, f.gw, "strict", []byte(`{"card":"4111-0000-0000-0002"}`))
	testkit.Produce(t, f.gw.Kafka, strict...)
	testkit.Produce(t, f.gw.Kafka, kafka.Message{Topic: "strict", Partition: 0, Value: []byte(`{"card":"4111-in-clear"}`)})
	testkit.Produce(t, f.gw.Kafka, strict...)
	msgs = testkit.ReadAll(t, []string{f.proxy}, "strict")
	if len(msgs) != 1 || string(msgs[0].Value) != `{"card":"4111-0000-0000-0002"}` {
		t.Fatalf("fetch_failed = error: %d records", len(msgs))
	}
	ccfg := saramaConfig()
	ccfg.Consumer.Return.Errors = true
	cons, err := sarama.NewConsumer([]string{f.proxy}, ccfg)
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	pc, err := cons.ConsumePartition("strict", 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	select {
	case m := <-pc.Messages():
		t.Fatalf("record at a failed offset delivered: %q", m.Value)
	case err := <-pc.Errors():
		if !errors.Is(err, sarama.ErrInvalidMessage) {
			t.Fatalf("error at the failed record: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("no error at the failed record")
	}
}
