package bridge

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/kafkagate/kafkagate/internal/config"
)

// Topics are a bridge's topics and group as given on a command line; empty
// ones come from the configuration file.
type Topics struct {
	Source, Target, DLQ, Group string
}

// FromFile resolves a bridge's configuration from the file's [encryptor]
// section (sourcetopic, targettopic, dlqtopic, group.id,
// session.timeout.ms, heartbeat.interval.ms, max.poll.interval.ms,
// group.instance.id, partition.assignment.strategy) and the target's
// policy;
// non-empty fields of t take precedence. The group defaults to
// DefaultGroup(target), never to the shared [consumer] group.id. Engine
// and Kafka are left to the caller.
func FromFile(f *config.File, t Topics) (Config, error) {
	if t.Source == "" {
		t.Source = f.Get("encryptor", "sourcetopic", "")
	}
	if t.Target == "" {
		t.Target = f.Get("encryptor", "targettopic", "")
	}
	if t.Source == "" || t.Target == "" {
		return Config{}, fmt.Errorf("no source or target topic: set [encryptor] sourcetopic and targettopic, or --source and --target")
	}
	pol, ok := f.Policies.For(t.Target)
	if !ok {
		return Config{}, fmt.Errorf("target topic %q has no [policy:%s] section: refusing to bridge into it (fail closed; mode = passthrough opts out explicitly)", t.Target, t.Target)
	}
	if t.Group == "" {
		t.Group = f.Get("encryptor", "group.id", DefaultGroup(t.Target))
	}
	if t.DLQ == "" {
		t.DLQ = f.Get("encryptor", "dlqtopic", "")
	}
	sessionTimeout, err := millis(f, "session.timeout.ms")
	if err != nil {
		return Config{}, err
	}
	heartbeat, err := millis(f, "heartbeat.interval.ms")
	if err != nil {
		return Config{}, err
	}
	// max.poll.interval.ms is the Java client's rebalance timeout.
	rebalance, err := millis(f, "max.poll.interval.ms")
	if err != nil {
		return Config{}, err
	}
	return Config{Source: t.Source, Target: t.Target, DLQ: t.DLQ, Group: t.Group, Policy: pol,
		SessionTimeout: sessionTimeout, HeartbeatInterval: heartbeat, RebalanceTimeout: rebalance,
		InstanceID: f.Get("encryptor", "group.instance.id", ""),
		Assignment: strings.ReplaceAll(f.Get("encryptor", "partition.assignment.strategy", ""), " ", "")}, nil
}

// millis reads an [encryptor] duration given in milliseconds (0 if unset).
func millis(f *config.File, key string) (time.Duration, error) {
	v := f.Get("encryptor", key, "")
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("[encryptor] %s %q is not a positive number of milliseconds", key, v)
	}
	return time.Duration(n) * time.Millisecond, nil
}

// LagSource measures a consumer group's lag over a topic (*kafka.Client).
type LagSource interface {
	ConsumerLag(group, topic string) (int64, error)
}

// WatchLag measures the bridge's consumer lag over its source topic now
// and every interval until ctx ends; Lag returns the last measure. A
// failed measure makes the lag unknown (-1).
func (b *Bridge) WatchLag(ctx context.Context, src LagSource, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		n, err := src.ConsumerLag(b.cfg.Group, b.cfg.Source)
		if err != nil {
			n = -1
			b.log.Debug("bridge consumer lag unknown", "error", err)
		}
		b.lag.Store(n)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Lag is the consumer lag last measured by WatchLag; -1 until known.
func (b *Bridge) Lag() int64 { return b.lag.Load() }
