package testkit

import (
	"context"
	"testing"

	"github.com/kafkagate/kafkagate/internal/server"
)

// StartProxy serves gw's Kafka proxy (o.Addr default 127.0.0.1:0, a free
// block of ports) until t ends, when it checks that Serve returned nil; it
// returns the proxy's bootstrap address.
func StartProxy(t testing.TB, gw *server.Gateway, o server.ProxyOptions) string {
	t.Helper()
	if o.Addr == "" {
		o.Addr = "127.0.0.1:0"
	}
	px, err := gw.NewProxy(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- px.Serve(ctx) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("kafka proxy: %v", err)
		}
	})
	return px.Addr()
}
