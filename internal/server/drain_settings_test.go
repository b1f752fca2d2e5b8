package server_test

import (
	"errors"
	"testing"
	"time"

	"github.com/kafkagate/kafkagate/internal/config"
	"github.com/kafkagate/kafkagate/internal/server"
)

// TestDrainSettings: [kafkagate] drain_delay and drain_timeout are read
// as durations, 0s included; unset they are zero and marked unset; a
// negative or unparsable value is a configuration error.
func TestDrainSettings(t *testing.T) {
	read := func(kv string) (server.Settings, error) {
		t.Helper()
		f, err := config.Parse([]byte("[kafkagate]\n" + kv))
		if err != nil {
			t.Fatal(err)
		}
		return server.ReadSettings(f)
	}
	s, err := read("drain_delay = 0s\ndrain_timeout = 40s\n")
	if err != nil || s.DrainDelay != 0 || !s.DrainDelaySet || s.DrainTimeout != 40*time.Second || !s.DrainTimeoutSet {
		t.Fatalf("set: %+v %v", s, err)
	}
	s, err = read("")
	if err != nil || s.DrainDelaySet || s.DrainTimeoutSet || s.DrainDelay != 0 || s.DrainTimeout != 0 {
		t.Fatalf("unset: %+v %v", s, err)
	}
	for _, bad := range []string{"drain_delay = -1s\n", "drain_timeout = soon\n", "drain_delay = 2h\n"} {
		if _, err := read(bad); !errors.Is(err, config.ErrConfig) {
			t.Errorf("%q: %v, want a configuration error", bad, err)
		}
	}
}

// TestStreamMembershipSettings: [kafkagate] stream_session_timeout,
// stream_rebalance_timeout and stream_heartbeat_interval are durations
// for the group membership of records:stream; a bad one is a
// configuration error.
func TestStreamMembershipSettings(t *testing.T) {
	f, err := config.Parse([]byte("[kafkagate]\nstream_session_timeout = 45s\nstream_rebalance_timeout = 2m\nstream_heartbeat_interval = 3s\n"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := server.ReadSettings(f)
	if err != nil || s.StreamSessionTimeout != 45*time.Second || s.StreamRebalanceTimeout != 2*time.Minute || s.StreamHeartbeatInterval != 3*time.Second {
		t.Fatalf("%+v %v", s, err)
	}
	for _, bad := range []string{"stream_session_timeout = soon\n", "stream_rebalance_timeout = -1s\n", "stream_heartbeat_interval = 0s\n"} {
		f, err := config.Parse([]byte("[kafkagate]\n" + bad))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := server.ReadSettings(f); !errors.Is(err, config.ErrConfig) {
			t.Errorf("%q: %v, want a configuration error", bad, err)
		}
	}
}
