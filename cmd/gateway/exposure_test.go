package main

import (
	"bytes"
	"context"
	"errors"
	"github.com/kafkagate/kafkagate/internal/testkit"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/kafkagate/kafkagate/internal/gateway"
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
		if !errors.Is(err, gateway.ErrExposed) || strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), "access_file") {
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
