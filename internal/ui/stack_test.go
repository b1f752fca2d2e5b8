package ui_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kafkagate/kafkagate/internal/config"
	"github.com/kafkagate/kafkagate/internal/server"
	"github.com/kafkagate/kafkagate/internal/testkit"
)

// served is a gateway on the embedded default configuration, against a
// real Vault dev server and kfake, serving the API and the viewer.
type served struct {
	base string
	cid  string
	gw   *server.Gateway
}

// serve starts it. accessLines, when not empty, become its access_file
// ([kafkagate] access_file): authentication on.
func serve(t *testing.T, accessLines ...string) *served {
	t.Helper()
	return serveWith(t, "", accessLines...)
}

// serveWith is serve with extra [kafkagate] keys (lines of key = value).
func serveWith(t *testing.T, kafkagateKeys string, accessLines ...string) *served {
	t.Helper()
	env := testkit.Start(t)
	orig, err := os.ReadFile("../../getting_started.ini.orig")
	if err != nil {
		t.Fatal(err)
	}
	text := string(orig)
	if len(accessLines) > 0 {
		dir := t.TempDir()
		af := filepath.Join(dir, "access")
		if err := os.WriteFile(af, []byte(strings.Join(accessLines, "\n")+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		text = strings.Replace(text, "#access_file = /etc/kafkagate/access", "access_file = "+af, 1)
	}
	if kafkagateKeys != "" {
		text = strings.Replace(text, "\n[kafkagate]\n", "\n[kafkagate]\n"+kafkagateKeys+"\n", 1)
	}
	path := filepath.Join(t.TempDir(), "getting_started.ini")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	testkit.ProvisionDemo(t, env, cfg)
	gw := testkit.Gateway(t, env, server.Options{Config: cfg, Vault: testkit.RootVault(env, 10*time.Second)})
	if (len(accessLines) > 0) != (gw.Access != nil) {
		t.Fatalf("access control on: %t, want %t", gw.Access != nil, len(accessLines) > 0)
	}
	base := testkit.Serve(t, gw)
	cid := testkit.ClusterID(t, gw)
	return &served{base: base, cid: cid, gw: gw}
}

// produce posts one JSON record through the REST API.
func (s *served) produce(t *testing.T, token, topic string, value any) {
	t.Helper()
	s.produceRecord(t, token, topic, map[string]any{"key": map[string]any{"type": "STRING", "data": "viewer-test"}, "value": map[string]any{"type": "JSON", "data": value}})
}

// produceRecord posts one REST Proxy record object.
func (s *served) produceRecord(t *testing.T, token, topic string, record map[string]any) {
	t.Helper()
	body, _ := json.Marshal(record)
	req, _ := http.NewRequest(http.MethodPost, fmt.Sprintf("%s/v3/clusters/%s/topics/%s/records", s.base, s.cid, topic), bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("produce to %s: %d %s", topic, resp.StatusCode, b)
	}
}

// get calls a viewer endpoint and returns the status and body.
func (s *served) get(t *testing.T, token, path string) (int, []byte) {
	t.Helper()
	resp, b := testkit.Do(t, nil, http.MethodGet, s.base+path, testkit.Bearer(token), "")
	return resp.StatusCode, b
}

// purchase is a record whose every field the purchases_encrypted policy
// encrypts; the values are unique to the test run.
type purchase struct {
	Name       string `json:"Name"`
	Address    string `json:"Address"`
	CreditCard string `json:"credit_card"`
}

func newPurchase() purchase {
	n := time.Now().UnixNano() % 1_000_000
	return purchase{
		Name:       fmt.Sprintf("Zelda Quintero %06d", n),
		Address:    fmt.Sprintf("%d Wisteria Lane, Fairview", n),
		CreditCard: "4539-1488-0343-6467", // Luhn-valid test number
	}
}

// plaintexts are the byte strings of p that must never reach a viewer
// without consume rights, nor the stored pane.
func (p purchase) plaintexts() []string {
	return []string{p.Name, p.Address, p.CreditCard, strings.ReplaceAll(p.CreditCard, "-", "")}
}
