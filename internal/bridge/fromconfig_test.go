package bridge_test

import (
	"strings"
	"testing"
	"time"

	"github.com/kafkagate/kafkagate/internal/bridge"
	"github.com/kafkagate/kafkagate/internal/config"
)

func TestFromFile(t *testing.T) {
	parse := func(ini string) *config.File {
		t.Helper()
		f, err := config.Parse([]byte(ini))
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	const base = "[default]\nbootstrap.servers = k:9092\n\n[policy:enc]\nfields = Name transit\n\n"
	f := parse(base + "[encryptor]\nsourcetopic = plain\ntargettopic = enc\nsession.timeout.ms = 1000\nheartbeat.interval.ms = 100\nmax.poll.interval.ms = 30000\ngroup.instance.id = bridge-0\npartition.assignment.strategy = cooperative-sticky, sticky\n")
	c, err := bridge.FromFile(f, bridge.Topics{})
	if err != nil {
		t.Fatal(err)
	}
	if c.Source != "plain" || c.Target != "enc" || c.Group != bridge.DefaultGroup("enc") || c.DLQ != "" || c.Policy == nil || c.Policy.Topic != "enc" ||
		c.SessionTimeout != time.Second || c.HeartbeatInterval != 100*time.Millisecond || c.RebalanceTimeout != 30*time.Second || c.InstanceID != "bridge-0" || c.Assignment != "cooperative-sticky,sticky" {
		t.Fatalf("from the file: %+v", c)
	}
	c, err = bridge.FromFile(parse(base+"[encryptor]\ngroup.id = g\ndlqtopic = d\n"), bridge.Topics{Source: "s", Target: "enc", DLQ: "x"})
	if err != nil || c.Source != "s" || c.Group != "g" || c.DLQ != "x" {
		t.Fatalf("flags over the file: %+v, %v", c, err)
	}
	c.Assignment = "range"
	if _, err := bridge.New(c); err == nil || !strings.Contains(err.Error(), "assignment strategy") {
		t.Errorf("an unknown assignment strategy: %v, want refused", err)
	}
	for name, tc := range map[string]struct {
		ini  string
		want string
	}{
		"no topics":       {base, "no source or target topic"},
		"no policy":       {base + "[encryptor]\nsourcetopic = plain\ntargettopic = other\n", "has no [policy:other] section"},
		"bad session":     {base + "[encryptor]\nsourcetopic = plain\ntargettopic = enc\nsession.timeout.ms = soon\n", "session.timeout.ms"},
		"zero heartbeats": {base + "[encryptor]\nsourcetopic = plain\ntargettopic = enc\nheartbeat.interval.ms = 0\n", "heartbeat.interval.ms"},
	} {
		if _, err := bridge.FromFile(parse(tc.ini), bridge.Topics{}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", name, err, tc.want)
		}
	}
}
