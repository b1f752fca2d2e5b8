package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/kafkagate/kafkagate/internal/server"
	"github.com/kafkagate/kafkagate/internal/testkit"
)

// TestProxyCommandSASL: `gateway proxy` with an access file logs Kafka
// clients in against its sasl lines (the line `gateway token sasl`
// printed) and may then listen beyond loopback; a wrong password is
// refused and stores nothing; without an access file a non-loopback
// listen address is refused. --pprof serves the proxy process's Go
// profiles on loopback only.
func TestProxyCommandSASL(t *testing.T) {
	env := testkit.Start(t)
	testkit.UseVault(t, env)
	dir := t.TempDir()
	var line bytes.Buffer
	if err := runIn("Kafka-pw-1\n", &line, "token", "sasl", "shop", "--rights", "produce:purchases consume:purchases", "--access-file", dir+"/access"); err != nil {
		t.Fatal(err)
	}
	base := fmt.Sprintf("[default]\nbootstrap.servers=%s\n\n[policy:purchases]\nfields = Name transit\n", env.Brokers[0])
	open := testkit.WriteFile(t, dir, "open.ini", base)
	var out bytes.Buffer
	if err := run(context.Background(), &out, "proxy", "--config", open, "--listen", "0.0.0.0:19192"); !errors.Is(err, server.ErrExposed) {
		t.Fatalf("no access file, listen 0.0.0.0: %v", err)
	}
	if err := run(context.Background(), &out, "proxy", "--config", open, "--pprof", "0.0.0.0:0"); err == nil || !strings.Contains(err.Error(), "--pprof 0.0.0.0:0") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("--pprof on a non-loopback address: %v", err)
	}

	cfg := testkit.WriteFile(t, dir, "gw.ini", base+"\n[kafkagate]\naccess_file = access\n")
	listen := "0.0.0.0:" + strings.Split(freeAddr(t), ":")[1]
	pprofAddr := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	logs := &testkit.SyncBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, logs, "proxy", "--config", cfg, "--listen", listen, "--advertised", "127.0.0.1", "--pprof", pprofAddr)
	}()
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(logs.String(), "kafka proxy on ") {
		select {
		case err := <-done:
			t.Fatalf("proxy exited: %v\n%s", err, logs.String())
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("proxy not up:\n%s", logs.String())
		}
	}
	checkPprof(t, "proxy", pprofAddr)
	addr := "127.0.0.1:" + strings.Split(listen, ":")[1]
	produce := func(password string) error {
		c := sarama.NewConfig()
		c.Version = sarama.V2_8_0_0
		c.Producer.Return.Successes = true
		c.Producer.RequiredAcks = sarama.WaitForAll
		c.Net.SASL.Enable, c.Net.SASL.Mechanism, c.Net.SASL.Version = true, sarama.SASLTypePlaintext, sarama.SASLHandshakeV1
		c.Net.SASL.User, c.Net.SASL.Password = "shop", password
		c.Metadata.Retry.Max = 1
		sp, err := sarama.NewSyncProducer([]string{addr}, c)
		if err != nil {
			return err
		}
		defer sp.Close()
		_, _, err = sp.SendMessage(&sarama.ProducerMessage{Topic: "purchases", Value: sarama.StringEncoder(`{"Name":"Ann Secret"}`)})
		return err
	}
	if err := produce("Kafka-pw-2"); err == nil || !strings.Contains(logs.String(), "sasl authentication failed") {
		t.Fatalf("a wrong password: %v\n%s", err, logs.String())
	}
	if err := produce("Kafka-pw-1"); err != nil {
		t.Fatalf("produce as shop: %v\n%s", err, logs.String())
	}
	kc := testkit.KafkaClient(t, testkit.KafkaSettings(t, env.Brokers))
	recs := testkit.Stored(t, kc, "purchases")
	if len(recs) != 1 || bytes.Contains(recs[0].Value, []byte("Ann Secret")) || !bytes.Contains(recs[0].Value, []byte("vault:v1:")) {
		t.Fatalf("stored %d records: %+v", len(recs), recs)
	}
	if strings.Contains(logs.String(), "Kafka-pw") {
		t.Fatal("the log holds a password")
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("proxy: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("proxy did not stop")
	}
}
