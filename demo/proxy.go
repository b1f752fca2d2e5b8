package demo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"

	"github.com/kafkagate/kafkagate/demo/internal/views"
	"github.com/kafkagate/kafkagate/internal/kafka"
)

// proxyRecords is how many purchases kcat writes through the Kafka proxy.
const proxyRecords = 3

// proxy is the Kafka proxy step: kcat (librdkafka, unmodified) produces
// purchases through the proxy to the encrypted topic, the broker's view
// shows ciphertext, and kcat consuming through the proxy gets the
// plaintext back. Without kcat the step says so and is skipped.
func (r *runner) proxy(ctx context.Context) error {
	topic := r.d.TargetTopic
	views.Section(r.w, "Demo 4: kcat → Kafka proxy "+r.o.ProxyAddr+" → "+topic)
	kcat, err := exec.LookPath("kcat")
	if err != nil {
		fmt.Fprintf(r.w, "kcat is not installed (make deps installs it): step skipped.\n")
		return nil
	}
	fmt.Fprintf(r.w, "kcat, an unmodified Kafka client, points its bootstrap address at the proxy: it produces %d purchases,\nthe proxy encrypts them by the topic's policy, and kcat consuming through the proxy gets them back.\n\n", proxyRecords)
	before, err := offsets(r.kc, topic)
	if err != nil {
		return err
	}
	var lines, secrets []string
	for range proxyRecords {
		_, p := r.gen.Next()
		lines = append(lines, string(p.JSON()))
		secrets = append(secrets, p.Name, p.Address, p.CreditCard)
	}
	pctx, cancel := context.WithTimeout(ctx, r.o.Wait)
	defer cancel()
	prod := exec.CommandContext(pctx, kcat, "-b", r.o.ProxyAddr, "-t", topic, "-P", "-p", "0")
	prod.Stdin = strings.NewReader(strings.Join(lines, "\n") + "\n")
	if out, err := prod.CombinedOutput(); err != nil {
		return fmt.Errorf("kcat produce through the proxy: %w: %s", err, firstLine(out))
	}
	recs, err := waitRecords(ctx, r.kc, topic, before, proxyRecords, r.o.Wait)
	if err != nil {
		return err
	}
	var stored []kafka.Record
	for _, rec := range recs {
		if rec.Partition == 0 {
			stored = append(stored, rec)
		}
	}
	if len(stored) != proxyRecords {
		return fmt.Errorf("%s/0 holds %d new records, want %d", topic, len(stored), proxyRecords)
	}
	for _, rec := range stored {
		for _, s := range secrets {
			if bytes.Contains(rec.Value, []byte(s)) {
				return fmt.Errorf("%s/0@%d: plaintext stored by the proxy", topic, rec.Offset)
			}
		}
	}
	cons := exec.CommandContext(pctx, kcat, "-b", r.o.ProxyAddr, "-t", topic, "-C", "-q", "-e", "-p", "0",
		"-o", strconv.FormatInt(stored[0].Offset, 10), "-c", strconv.Itoa(proxyRecords))
	out, err := cons.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			out = ee.Stderr
		}
		return fmt.Errorf("kcat consume through the proxy: %w: %s", err, firstLine(out))
	}
	got := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	equal := 0
	for i, rec := range stored {
		v := ""
		if i < len(got) {
			v = got[i]
		}
		views.Record(r.w, rec, []byte(v), "kcat through the proxy")
		if v == lines[i] {
			equal++
		}
	}
	fmt.Fprintf(r.w, "\n%d of %d records kcat read back through the proxy equal what kcat produced; the broker holds none of their names, addresses or card numbers.\n", equal, proxyRecords)
	if equal != proxyRecords {
		return fmt.Errorf("kcat read back %d of %d records equal through the proxy", equal, proxyRecords)
	}
	return nil
}

func firstLine(b []byte) string {
	s, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	return s
}
