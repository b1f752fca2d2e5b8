package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kafkagate/kafkagate/internal/testkit"
)

// buildGateway builds this command into a temporary directory.
func buildGateway(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "gateway")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

const cliBadConfig = `
[policy:purchases]
fields = Name transit

[policy:docs]
mode = envelope
`

// TestCLIBadInput runs the built gateway binary against real Vault and
// kfake with bad arguments, files and credentials: each run must exit 1
// and print exactly one line, "gateway: <reason>", on stderr, naming the
// fault; the send-file refusals produce nothing (watermarks unchanged).
func TestCLIBadInput(t *testing.T) {
	bin := buildGateway(t)
	env := testkit.Start(t)
	ctx := context.Background()
	testkit.EnsureEnvelopeKEK(t, env)
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cfgPath := write("kafkagate.ini", cliBadConfig)
	badINI := write("bad.ini", "[policy:purchases]\nfields =\n    Name transit\n    Name transit\n    Address rot13\n")
	secret := write("secret.txt", "Ann Example, 1 Main St, Springfield")
	sub := filepath.Join(dir, "adir")
	if err := os.Mkdir(sub, 0o700); err != nil {
		t.Fatal(err)
	}
	brokers := "--brokers=" + env.Brokers[0]
	kc := testkit.KafkaClient(t, testkit.KafkaSettings(t, env.Brokers))
	watched := []string{"purchases", "docs", "nopolicy"}
	before := map[string]int64{}
	for _, tp := range watched {
		before[tp] = testkit.HighWatermarks(t, kc, tp)
	}

	vaultEnv := []string{"VAULT_ADDR=" + env.Vault.Addr, "VAULT_TOKEN=" + env.Vault.Token}
	cases := []struct {
		name string
		args []string
		env  []string // replaces the Vault variables
		want string   // in the line
	}{
		{"consume without --topic", []string{"consume"}, nil, "--topic is required"},
		{"consume bad --format", []string{"consume", "--topic", "purchases", "--format", "xml"}, nil, "--format"},
		{"bad --log-level", []string{"consume", "--topic", "purchases", "--log-level", "loud"}, nil, "--log-level"},
		{"--group with --offset", []string{"consume", "--topic", "purchases", "--group", "g", "--offset", "3"}, nil, "--offset"},
		{"--from-beginning without --group", []string{"consume", "--topic", "purchases", "--from-beginning"}, nil, "--from-beginning"},
		{"--instance-id without --group", []string{"consume", "--topic", "purchases", "--instance-id", "pod-0"}, nil, "need --group"},
		{"--partition not a number", []string{"consume", "--topic", "purchases", "--partition", "one"}, nil, "--partition"},
		{"unknown flag", []string{"consume", "--topic", "purchases", "--colour"}, nil, "colour"},
		{"unknown command", []string{"produce-plaintext"}, nil, "produce-plaintext"},
		{"missing config file", []string{"--config", filepath.Join(dir, "none.ini"), "consume", "--topic", "purchases"}, nil, "none.ini"},
		{"config with a duplicate field and an unknown mode", []string{"--config", badINI, "consume", "--topic", "purchases"}, nil, "rot13"},
		{"send-file without --topic", []string{"--config", cfgPath, brokers, "send-file", secret}, nil, "--topic"},
		{"send-file to a topic without a policy", []string{"--config", cfgPath, brokers, "send-file", "--topic", "nopolicy", secret}, nil, "nopolicy"},
		{"send-file to a fields topic", []string{"--config", cfgPath, brokers, "send-file", "--topic", "purchases", secret}, nil, "mode = envelope"},
		{"send-file of a missing file", []string{"--config", cfgPath, brokers, "send-file", "--topic", "docs", filepath.Join(dir, "missing.bin")}, nil, "missing.bin"},
		{"send-file of a directory", []string{"--config", cfgPath, brokers, "send-file", "--topic", "docs", sub}, nil, "not a regular file"},
		{"send-file chunk size not a number", []string{"--config", cfgPath, brokers, "send-file", "--topic", "docs", "--chunk-size", "64k", secret}, nil, "chunk-size"},
		{"send-file with a revoked Vault token", []string{"--config", cfgPath, brokers, "send-file", "--log-level", "error", "--topic", "docs", secret}, []string{"VAULT_ADDR=" + env.Vault.Addr, "VAULT_TOKEN=hvs.not-a-token"}, "nothing produced"},
		{"keys rotate without a key", []string{"keys", "rotate"}, nil, "KEY"},
		{"keys show with Vault unreachable", []string{"keys", "show", "--log-level", "error", "kafka-purchases"}, []string{"VAULT_ADDR=http://127.0.0.1:1", "VAULT_TOKEN=x"}, "vault"},
		{"serve on all interfaces without access_file", []string{"--config", cfgPath, "serve", "--listen", "0.0.0.0:0"}, nil, "access_file"},
		{"token new with a bad right", []string{"token", "new", "--principal", "ops", "--rights", "produce"}, nil, "--rights"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cctx, cancel := context.WithTimeout(ctx, 60*time.Second)
			defer cancel()
			cmd := exec.CommandContext(cctx, bin, c.args...)
			cmd.Env = append(os.Environ(), "VAULT_ADDR=", "VAULT_TOKEN=")
			if c.env != nil {
				cmd.Env = append(cmd.Env, c.env...)
			} else {
				cmd.Env = append(cmd.Env, vaultEnv...)
			}
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 1 {
				t.Fatalf("exit: %v (want status 1)\nstderr: %s", err, stderr.String())
			}
			line := strings.TrimSuffix(stderr.String(), "\n")
			if line == "" || strings.Contains(line, "\n") {
				t.Fatalf("stderr is not one line:\n%s", stderr.String())
			}
			if !strings.HasPrefix(line, "gateway: ") || !strings.Contains(line, c.want) {
				t.Fatalf("stderr %q: want gateway: ... %q", line, c.want)
			}
			for _, s := range []string{"Ann Example", env.Vault.Token} {
				if strings.Contains(stdout.String()+line, s) {
					t.Fatalf("output leaks %q", s)
				}
			}
		})
	}
	for _, tp := range watched {
		if n := testkit.HighWatermarks(t, kc, tp); n != before[tp] {
			t.Errorf("topic %s: %d -> %d records after refused commands", tp, before[tp], n)
		}
	}
	t.Logf("CLI bad-input corpus: %d cases, each exit 1 with one stderr line", len(cases))
}
