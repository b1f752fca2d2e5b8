package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/kafkagate/kafkagate/internal/server"
	"github.com/kafkagate/kafkagate/internal/testkit"
)

// TestDevRefusesExposureWithoutAuth: `gateway dev --listen` beyond
// loopback without an access_file is refused like serve, in one line,
// before Vault or the broker is started (their addresses stay free).
func TestDevRefusesExposureWithoutAuth(t *testing.T) {
	for _, listen := range []string{"0.0.0.0:0", ":8080", "[::]:0", "192.0.2.1:8080"} {
		vaddr, kaddr := freeAddr(t), freeAddr(t)
		var out bytes.Buffer
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := run(ctx, &out, "dev", "--listen", listen, "--vault-addr", vaddr, "--kafka-addr", kaddr)
		cancel()
		if !errors.Is(err, server.ErrExposed) || strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), "access_file") {
			t.Fatalf("dev --listen %s: err %v", listen, err)
		}
		for _, addr := range []string{vaddr, kaddr} {
			if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
				c.Close()
				t.Fatalf("dev --listen %s started something on %s before refusing", listen, addr)
			}
		}
	}
}

// TestBridgeMetricsListenLoopbackOnly: `gateway bridge --metrics-listen`
// serves metrics without authentication, so a non-loopback address is
// refused in one line before anything is dialled (the broker in the
// config does not exist).
func TestBridgeMetricsListenLoopbackOnly(t *testing.T) {
	cfg := testkit.WriteFile(t, t.TempDir(), "gw.ini", "[default]\nbootstrap.servers=127.0.0.1:1\n\n[policy:enc]\nfields = Name transit\n")
	for _, addr := range []string{"0.0.0.0:9464", ":9464", "[::]:9464", "192.0.2.1:9464"} {
		var out bytes.Buffer
		err := run(context.Background(), &out, "bridge", "--config", cfg, "--source", "plain", "--target", "enc", "--metrics-listen", addr)
		if err == nil || strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), "--metrics-listen "+addr) || !strings.Contains(err.Error(), "loopback") {
			t.Fatalf("--metrics-listen %s: err %v", addr, err)
		}
	}
}

// TestProxyMetricsListen: `gateway proxy --metrics-listen` refuses a
// non-loopback address in one line before anything is dialled, and on
// loopback serves the gateway's Prometheus metrics while the proxy runs.
func TestProxyMetricsListen(t *testing.T) {
	cfg := testkit.WriteFile(t, t.TempDir(), "gw.ini", "[default]\nbootstrap.servers=127.0.0.1:1\n\n[policy:enc]\nfields = Name transit\n")
	for _, addr := range []string{"0.0.0.0:9464", ":9464", "192.0.2.1:9464"} {
		var out bytes.Buffer
		err := run(context.Background(), &out, "proxy", "--config", cfg, "--listen", "127.0.0.1:0", "--metrics-listen", addr)
		if err == nil || strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), "--metrics-listen "+addr) || !strings.Contains(err.Error(), "loopback") {
			t.Fatalf("--metrics-listen %s: err %v", addr, err)
		}
	}

	env := testkit.Start(t)
	testkit.UseVault(t, env)
	cfg = testkit.WriteFile(t, t.TempDir(), "gw.ini", "[default]\nbootstrap.servers="+env.Brokers[0]+"\n\n[policy:enc]\nfields = Name transit\n")
	maddr := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	out := &testkit.SyncBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, out, "proxy", "--config", cfg, "--listen", "127.0.0.1:0", "--metrics-listen", maddr)
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("gateway proxy: %v", err)
		}
	}()
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get("http://" + maddr + "/metrics")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || !strings.Contains(string(b), "go_goroutines") {
				t.Fatalf("/metrics: %d %.200s", resp.StatusCode, b)
			}
			if strings.Contains(out.String(), "kafka proxy on ") {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("/metrics and the proxy banner not both there within 60 s: %v\n%s", err, out.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}
