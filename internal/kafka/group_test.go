package kafka

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

func TestGroupConfig(t *testing.T) {
	c := dialKfake(t)
	s := c.Settings()
	cfg, err := groupConfig(s, GroupOptions{Group: "g", Topic: "t", ClientSuffix: "-x", Initial: OffsetNewest,
		ReadCommitted: true, Balance: BalanceSticky, AutoCommit: true, SmallPrefetch: true,
		SessionTimeout: 6 * time.Second, RebalanceTimeout: 40 * time.Second, HeartbeatInterval: time.Second, InstanceID: "bridge-1"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ClientID != s.Sarama.ClientID+"-x" || cfg.Consumer.Offsets.Initial != OffsetNewest || !cfg.Consumer.Offsets.AutoCommit.Enable ||
		cfg.Consumer.Group.Session.Timeout != 6*time.Second || cfg.Consumer.Group.Rebalance.Timeout != 40*time.Second ||
		cfg.Consumer.Group.Heartbeat.Interval != time.Second || cfg.Consumer.Group.InstanceId != "bridge-1" ||
		len(cfg.Consumer.Group.Rebalance.GroupStrategies) != 1 || cfg.ChannelBufferSize != 2 {
		t.Fatalf("options not applied: %+v", cfg.Consumer)
	}
	if cfg.Net.ReadTimeout != 45*time.Second {
		t.Errorf("read timeout %v, want the rebalance timeout + 5 s", cfg.Net.ReadTimeout)
	}
	if s.Sarama.ClientID == cfg.ClientID || s.Sarama.Consumer.Group.InstanceId != "" {
		t.Error("the settings were modified")
	}
	// sarama's default rebalance timeout (60 s) raises the 15 s default.
	if cfg, _ := groupConfig(s, GroupOptions{}); cfg.Net.ReadTimeout != 65*time.Second {
		t.Errorf("default read timeout %v, want 65s", cfg.Net.ReadTimeout)
	}
	// A read timeout already longer is kept.
	long := *s
	lc := *s.Sarama
	lc.Net.ReadTimeout = 2 * time.Minute
	long.Sarama = &lc
	if cfg, _ := groupConfig(&long, GroupOptions{}); cfg.Net.ReadTimeout != 2*time.Minute {
		t.Errorf("read timeout %v, want 2m kept", cfg.Net.ReadTimeout)
	}
	// The balances name the assignors announced to the group, preferred
	// first.
	for b, want := range map[Balance][]string{
		BalanceRange:              {"range"},
		BalanceSticky:             {"sticky"},
		BalanceCooperative:        {"cooperative-sticky"},
		BalanceCooperativeUpgrade: {"cooperative-sticky", "sticky"},
	} {
		cfg, err := groupConfig(s, GroupOptions{Balance: b})
		if err != nil {
			t.Fatalf("balance %d: %v", b, err)
		}
		var got []string
		for _, st := range cfg.Consumer.Group.Rebalance.GroupStrategies {
			got = append(got, st.Name())
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("balance %d announces %v, want %v", b, got, want)
		}
	}
	if err := CheckGroup(s, GroupOptions{InstanceID: "not valid!"}); !errors.Is(err, ErrConfig) {
		t.Errorf("invalid instance id: %v", err)
	}
	if _, err := JoinGroup(s, GroupOptions{Topic: "t"}); !errors.Is(err, ErrConfig) {
		t.Errorf("no group id: %v", err)
	}
}

func TestGroupRunsClaimsAndCommits(t *testing.T) {
	c := dialKfake(t)
	ctx := context.Background()
	const n = 40
	msgs := make([]Message, n)
	for i := range msgs {
		msgs[i] = Message{Topic: "runner", Partition: -1, Key: fmt.Appendf(nil, "k%d", i), Value: fmt.Appendf(nil, "v%d", i)}
	}
	ds, err := c.Produce(ctx, msgs)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range ds {
		if d.Err != nil {
			t.Fatal(d.Err)
		}
	}
	if lag, err := c.ConsumerLag("runner-group", "runner"); err != nil || lag != n {
		t.Fatalf("lag before: %d, %v", lag, err)
	}
	g, err := JoinGroup(c.Settings(), GroupOptions{Group: "runner-group", Topic: "runner", AutoCommit: true, RequireTopic: true,
		HeartbeatInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu       sync.Mutex
		seen     = map[string]bool{}
		setups   int
		cleanups int
	)
	all := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- g.Run(runCtx, GroupHandler{
			Setup:   func(*Session) { mu.Lock(); setups++; mu.Unlock() },
			Cleanup: func(s *Session) { mu.Lock(); cleanups++; mu.Unlock(); s.Commit() },
			Claim: func(s *Session, cl *Claim) {
				for {
					select {
					case r, ok := <-cl.Records:
						if !ok {
							return
						}
						s.MarkOffset(r.Partition, r.Offset+1, "")
						mu.Lock()
						seen[string(r.Value)] = true
						if len(seen) == n {
							close(all)
						}
						mu.Unlock()
					case <-s.Context().Done():
						return
					}
				}
			},
		})
	}()
	select {
	case <-all:
	case <-time.After(30 * time.Second):
		t.Fatal("not every record was claimed")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	if setups == 0 || cleanups != setups {
		t.Errorf("setups %d, cleanups %d", setups, cleanups)
	}
	mu.Unlock()
	if lag, err := c.ConsumerLag("runner-group", "runner"); err != nil || lag != 0 {
		t.Fatalf("lag after: %d, %v", lag, err)
	}
	if _, err := JoinGroup(c.Settings(), GroupOptions{Group: "g", Topic: "no-such-topic", RequireTopic: true}); !errors.Is(err, ErrUnknownTopic) {
		t.Errorf("missing topic: %v", err)
	}

	admin, err := NewAdmin(c.Settings(), "-admin")
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	parts, err := admin.Partitions("runner")
	if err != nil {
		t.Fatal(err)
	}
	offs, err := admin.CommittedOffsets("runner-group", "runner", parts)
	if err != nil {
		t.Fatal(err)
	}
	var committed int64
	for _, o := range offs {
		if o.Err != nil {
			t.Fatal(o.Err)
		}
		committed += max(o.Offset, 0)
	}
	if committed != n {
		t.Errorf("committed offsets sum to %d, want %d", committed, n)
	}
	if err := admin.DeleteGroup("runner-group"); err != nil {
		t.Fatal(err)
	}
	if err := admin.DeleteGroup("runner-group"); err != nil {
		t.Errorf("deleting a missing group: %v", err)
	}
	if lag, err := c.ConsumerLag("runner-group", "runner"); err != nil || lag != n {
		t.Errorf("lag after delete: %d, %v", lag, err)
	}
}

func TestAdminTopicsAndProducer(t *testing.T) {
	c := dialKfake(t)
	admin, err := NewAdmin(c.Settings(), "")
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if err := admin.CreateTopic("big", 3, 1, map[string]string{"max.message.bytes": "2097152"}); err != nil {
		t.Fatal(err)
	}
	ts, err := admin.Topics()
	if err != nil || ts["big"] != 3 {
		t.Fatalf("topics %v, %v", ts, err)
	}
	if v, ok, err := admin.TopicConfig("big", "max.message.bytes"); err != nil || !ok || v != "2097152" {
		t.Fatalf("config %q %v %v", v, ok, err)
	}
	p, err := NewProducer(c.Settings(), ProducerOptions{ClientSuffix: "-p"})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if errs := p.Send([]Message{{Topic: "big", Key: []byte("k"), Value: []byte("v"), Headers: []Header{{Key: "h", Value: []byte("x")}}}}); errs != nil {
		t.Fatal(errs)
	}
	errs := p.Send([]Message{{Topic: "big", Value: []byte("ok")}, {Topic: "big", Value: make([]byte, 2<<20)}})
	if len(errs) != 2 || errs[0] != nil || !errors.Is(errs[1], ErrTooLarge) {
		t.Fatalf("per-message errors: %v", errs)
	}
	var got []Record
	for _, part := range []int32{0, 1, 2} {
		rs, err := c.Read(context.Background(), "big", part, OffsetOldest, 10)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, rs...)
	}
	if len(got) != 2 {
		t.Fatalf("read %d records, want 2", len(got))
	}
}
