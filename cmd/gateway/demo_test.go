package main

import (
	"context"
	"encoding/json"
	"net"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kafkagate/kafkagate/internal/devenv"
	"github.com/kafkagate/kafkagate/internal/testkit"
)

// TestDemoExit runs what `make demo` runs (`gateway demo`, embedded
// default configuration, real Vault dev server and embedded Kafka) with
// --exit, and checks what it printed: demo 1's operator sees the
// purchases, demo 2's operator sees none of their plaintext while the
// consumer gets each back decrypted, the rotation moves new records to v2
// while an old one still decrypts, and demo 3's files arrive
// byte-identical. Then the command has returned and stopped serving.
func TestDemoExit(t *testing.T) {
	if _, err := devenv.FindVault(); err != nil {
		t.Fatal(err)
	}
	listen, vaddr, kaddr := freeAddr(t), freeAddr(t), freeAddr(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out := &testkit.SyncBuffer{}
	err := run(ctx, out, "demo", "--exit", "--count", "4", "--sleep", "0s", "--listen", listen, "--vault-addr", vaddr, "--kafka-addr", kaddr, "--proxy-addr", "127.0.0.1:0", "--workdir", t.TempDir())
	text := out.String()
	if err != nil {
		t.Fatalf("gateway demo --exit: %v\n%s", err, text)
	}
	t.Logf("gateway demo --exit printed %d lines", strings.Count(text, "\n"))
	if c, err := net.DialTimeout("tcp", listen, time.Second); err == nil {
		c.Close()
		t.Errorf("%s still accepts connections after gateway demo --exit returned", listen)
	}

	sections := splitSections(text)
	d1, d2, rot, d3 := sections["Demo 1"], sections["Demo 2"], sections["Key rotation"], sections["Demo 3"]
	if d1 == "" || d2 == "" || rot == "" || d3 == "" {
		t.Fatalf("missing a section (demo 1 %t, demo 2 %t, rotation %t, demo 3 %t):\n%s", d1 != "", d2 != "", rot != "", d3 != "", text)
	}
	// Demo 1: plaintext, admin and consumer see the same purchases.
	admin1, consumer1 := views(d1, "broker admin sees"), views(d1, "consumer sees")
	if len(admin1) != 4 || len(consumer1) != 4 {
		t.Fatalf("demo 1 shows %d admin and %d consumer views, want 4 each:\n%s", len(admin1), len(consumer1), d1)
	}
	var plain []string
	for i, v := range admin1 {
		var m map[string]string
		if err := json.Unmarshal([]byte(v), &m); err != nil {
			t.Fatalf("demo 1 admin view %q: %v", v, err)
		}
		if m["Name"] == "" || m["Address"] == "" || !cardShape.MatchString(m["credit_card"]) {
			t.Fatalf("demo 1 admin view %q is not a plaintext purchase", v)
		}
		if consumer1[i] != v {
			t.Errorf("demo 1: the consumer sees %q, the admin %q", consumer1[i], v)
		}
		plain = append(plain, m["Name"], m["Address"], m["credit_card"])
	}
	// Demo 2: the admin sees ciphertext only; the consumer, the purchases.
	admin2, consumer2 := views(d2, "broker admin sees"), views(d2, "consumer sees")
	if len(admin2) != 4 || len(consumer2) != 4 {
		t.Fatalf("demo 2 shows %d admin and %d consumer views, want 4 each:\n%s", len(admin2), len(consumer2), d2)
	}
	for _, v := range admin2 {
		for _, s := range plain {
			if strings.Contains(v, s) {
				t.Fatalf("demo 2: the broker admin sees plaintext %q in %s", s, v)
			}
		}
		if strings.Count(v, "vault:v1:") != 2 {
			t.Errorf("demo 2 admin view %s: want Name and Address as vault:v1: ciphertexts", v)
		}
	}
	for _, v := range consumer2 {
		if !strings.HasSuffix(v, "[decrypted]") {
			t.Errorf("demo 2 consumer view %q: want [decrypted]", v)
		}
		found := false
		for _, a := range admin1 {
			found = found || strings.HasPrefix(v, a+"  ")
		}
		if !found {
			t.Errorf("demo 2: the consumer sees %q, not one of the purchases of demo 1", v)
		}
	}
	if !strings.Contains(d2, "4 of 4 records read back through kafkagate equal what the producer wrote") {
		t.Errorf("demo 2 does not report 4 of 4 records equal:\n%s", d2)
	}
	// Rotation: new records under v2, an old record still decrypts.
	if !strings.Contains(rot, "rotated transit key kafka-purchases_encrypted: new records use v2") ||
		!strings.Contains(rot, "rotated FPE domain payments.card_number: new records use v2") {
		t.Errorf("rotation section:\n%s", rot)
	}
	adminRot := views(rot, "broker admin sees")
	if len(adminRot) != 4 { // 3 new records (4/2+1) and the old one read again
		t.Fatalf("rotation shows %d admin views, want 4:\n%s", len(adminRot), rot)
	}
	for _, v := range adminRot[:3] {
		if strings.Count(v, "vault:v2:") != 2 {
			t.Errorf("record after rotation %s: want v2 ciphertexts", v)
		}
	}
	if strings.Count(adminRot[3], "vault:v1:") != 2 || !strings.HasSuffix(views(rot, "consumer sees")[3], "[decrypted]") {
		t.Errorf("the old record after rotation: admin %s, consumer %s", adminRot[3], views(rot, "consumer sees")[3])
	}
	if !strings.Contains(rot, "3 of 3 records read back through kafkagate equal") {
		t.Errorf("rotation does not report 3 of 3 equal:\n%s", rot)
	}
	// Demo 3.
	if !strings.Contains(d3, "3 of 3 files are byte-identical to their source (SHA-256).") {
		t.Errorf("demo 3:\n%s", d3)
	}
	for _, v := range views(d3, "broker admin sees") {
		if !strings.HasPrefix(v, "(") || !strings.Contains(v, "bytes of ciphertext") {
			t.Errorf("demo 3 admin view %q: want ciphertext", v)
		}
	}
	// Demo 4: kcat through the Kafka proxy, or the step says it is skipped.
	d4 := sections["Demo 4"]
	if _, err := exec.LookPath("kcat"); err != nil {
		if !strings.Contains(d4, "kcat is not installed (make deps installs it): step skipped.") {
			t.Errorf("demo 4 without kcat:\n%s", d4)
		}
	} else {
		admin4, consumer4 := views(d4, "broker admin sees"), views(d4, "consumer sees")
		if len(admin4) != 3 || len(consumer4) != 3 {
			t.Fatalf("demo 4 shows %d admin and %d consumer views, want 3 each:\n%s", len(admin4), len(consumer4), d4)
		}
		for i, v := range admin4 {
			if strings.Count(v, "vault:v2:") != 2 {
				t.Errorf("demo 4 admin view %s: want Name and Address as vault:v2: ciphertexts", v)
			}
			var m map[string]string
			c := strings.TrimSuffix(consumer4[i], "  [kcat through the proxy]")
			if err := json.Unmarshal([]byte(c), &m); err != nil || m["Name"] == "" || !cardShape.MatchString(m["credit_card"]) {
				t.Fatalf("demo 4 consumer view %q is not a plaintext purchase (%v)", consumer4[i], err)
			}
			for _, s := range []string{m["Name"], m["Address"], m["credit_card"]} {
				if strings.Contains(v, s) {
					t.Fatalf("demo 4: the broker admin sees plaintext %q in %s", s, v)
				}
			}
		}
		if !strings.Contains(d4, "3 of 3 records kcat read back through the proxy equal what kcat produced") {
			t.Errorf("demo 4 does not report 3 of 3 equal:\n%s", d4)
		}
	}
	if !strings.Contains(text, "--exit: stopping.") {
		t.Error("no --exit line")
	}
}

var cardShape = regexp.MustCompile(`^\d{4}-\d{4}-\d{4}-\d{4}$`)

// splitSections maps each "=== <title> ===" section's first two words
// (or "Key rotation") to its text.
func splitSections(text string) map[string]string {
	out := map[string]string{}
	parts := regexp.MustCompile(`(?m)^=== `).Split(text, -1)
	for _, p := range parts[1:] {
		title, _, _ := strings.Cut(p, "\n")
		f := strings.Fields(title)
		if len(f) >= 2 {
			out[f[0]+" "+strings.TrimSuffix(f[1], ":")] = p
		}
	}
	return out
}

// views returns the text after each "<label>" column of a section.
func views(section, label string) []string {
	var out []string
	for _, l := range strings.Split(section, "\n") {
		if i := strings.Index(l, label); i >= 0 {
			out = append(out, strings.TrimSpace(l[i+len(label):]))
		}
	}
	return out
}
