package testkit_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kafkagate/kafkagate/internal/testkit"
)

// TestKfakeKeepsMemberKilledInJoin pins down a limitation of the kfake
// group coordinator the bridge tests run against: a new dynamic member
// whose connection dies while its JoinGroup is parked is never expired.
// kfake arms a member's session timer only when a reply to it is
// delivered (groups.go, group.reply), and the pending-member timer was
// stopped when the member entered the join (addMemberAndRebalance ->
// stopPending). So the member stays in the group, with the partitions
// the leader gave it, for good; Apache Kafka schedules its heartbeat
// expiry when the join completes, whether or not the answer arrives.
// Member L survives, member A joins and its connection closes, L
// rejoins and gives A two partitions; after 10 session timeouts of L
// heartbeating, A is still a member holding them. If this test fails,
// kfake has been fixed: the dynamic variant of
// TestBuiltBridgeTenSIGKILLsIn20s can come back.
func TestKfakeKeepsMemberKilledInJoin(t *testing.T) {
	const (
		group   = "kfake-join-kill"
		topic   = "t"
		session = time.Second
	)
	_, addrs := testkit.Kafka(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	newClient := func() *kgo.Client {
		cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.RequestRetries(0))
		if err != nil {
			t.Fatal(err)
		}
		return cl
	}
	meta := (&kmsg.ConsumerMemberMetadata{Topics: []string{topic}}).AppendTo(nil)
	join := func(cl *kgo.Client, member string) (*kmsg.JoinGroupResponse, error) {
		req := kmsg.NewPtrJoinGroupRequest()
		req.Group, req.MemberID, req.ProtocolType = group, member, "consumer"
		req.SessionTimeoutMillis = int32(session / time.Millisecond)
		req.RebalanceTimeoutMillis = int32(30 * time.Second / time.Millisecond)
		req.Protocols = []kmsg.JoinGroupRequestProtocol{{Name: "range", Metadata: meta}}
		return req.RequestWith(ctx, cl)
	}
	// memberID joins with no id and returns the id the coordinator
	// hands out (MEMBER_ID_REQUIRED, JoinGroup v4+).
	memberID := func(cl *kgo.Client) string {
		r, err := join(cl, "")
		if err != nil {
			t.Fatal(err)
		}
		if r.ErrorCode != kerr.MemberIDRequired.Code || r.MemberID == "" {
			t.Fatalf("first join: error %v, member %q; want MEMBER_ID_REQUIRED with an id", kerr.ErrorForCode(r.ErrorCode), r.MemberID)
		}
		return r.MemberID
	}
	assignment := func(parts ...int32) []byte {
		return (&kmsg.ConsumerMemberAssignment{Topics: []kmsg.ConsumerMemberAssignmentTopic{{Topic: topic, Partitions: parts}}}).AppendTo(nil)
	}
	sync := func(cl *kgo.Client, member string, gen int32, as []kmsg.SyncGroupRequestGroupAssignment) {
		req := kmsg.NewPtrSyncGroupRequest()
		req.Group, req.MemberID, req.Generation = group, member, gen
		req.ProtocolType, req.Protocol = kmsg.StringPtr("consumer"), kmsg.StringPtr("range")
		req.GroupAssignment = as
		r, err := req.RequestWith(ctx, cl)
		if err != nil {
			t.Fatal(err)
		}
		if err := kerr.ErrorForCode(r.ErrorCode); err != nil {
			t.Fatalf("sync of %s: %v", member, err)
		}
	}
	heartbeat := func(cl *kgo.Client, member string, gen int32) error {
		req := kmsg.NewPtrHeartbeatRequest()
		req.Group, req.MemberID, req.Generation = group, member, gen
		r, err := req.RequestWith(ctx, cl)
		if err != nil {
			return err
		}
		return kerr.ErrorForCode(r.ErrorCode)
	}
	describe := func(cl *kgo.Client) kmsg.DescribeGroupsResponseGroup {
		req := kmsg.NewPtrDescribeGroupsRequest()
		req.Groups = []string{group}
		r, err := req.RequestWith(ctx, cl)
		if err != nil {
			t.Fatal(err)
		}
		return r.Groups[0]
	}

	// L alone: generation 1, stable.
	lc := newClient()
	defer lc.Close()
	l := memberID(lc)
	r, err := join(lc, l)
	if err != nil || r.ErrorCode != 0 {
		t.Fatalf("L joins: %v %v", err, kerr.ErrorForCode(r.ErrorCode))
	}
	sync(lc, l, r.Generation, []kmsg.SyncGroupRequestGroupAssignment{{MemberID: l, MemberAssignment: assignment(0, 1, 2)}})

	// A joins; its JoinGroup is parked until L rejoins. Then A's
	// connection closes, as a SIGKILLed process's would.
	ac := newClient()
	a := memberID(ac)
	joined := make(chan error, 1)
	go func() { // owned by this test: ends when ac closes
		_, err := join(ac, a)
		joined <- err
	}()
	for {
		d := describe(lc)
		if d.State == "PreparingRebalance" && len(d.Members) == 2 {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("A's join never parked: %+v", d)
		}
		time.Sleep(20 * time.Millisecond)
	}
	ac.Close()
	if err := <-joined; err == nil {
		t.Fatal("A's parked join was answered before its connection closed")
	}
	time.Sleep(200 * time.Millisecond) // kfake notices the closed connection

	// L sees the rebalance, rejoins, leads, and gives A partitions 1 and 2.
	if err := heartbeat(lc, l, r.Generation); err != kerr.RebalanceInProgress {
		t.Fatalf("L's heartbeat: %v, want REBALANCE_IN_PROGRESS", err)
	}
	r, err = join(lc, l)
	if err != nil || r.ErrorCode != 0 {
		t.Fatalf("L rejoins: %v %v", err, kerr.ErrorForCode(r.ErrorCode))
	}
	var ids []string
	for _, m := range r.Members {
		ids = append(ids, m.MemberID)
	}
	if r.LeaderID != l || !slices.Contains(ids, a) {
		t.Fatalf("L's rejoin: leader %s, members %v; want L leading with A listed", r.LeaderID, ids)
	}
	gen := r.Generation
	sync(lc, l, gen, []kmsg.SyncGroupRequestGroupAssignment{
		{MemberID: l, MemberAssignment: assignment(0)},
		{MemberID: a, MemberAssignment: assignment(1, 2)},
	})

	// L heartbeats for 10 session timeouts; A never does.
	until := time.Now().Add(10 * session)
	for time.Now().Before(until) {
		if err := heartbeat(lc, l, gen); err != nil {
			t.Fatalf("L's heartbeat in generation %d: %v (the group rebalanced: kfake expired A)", gen, err)
		}
		time.Sleep(session / 5)
	}
	d := describe(lc)
	var held []int32
	for _, m := range d.Members {
		if m.MemberID != a {
			continue
		}
		var as kmsg.ConsumerMemberAssignment
		if err := as.ReadFrom(m.MemberAssignment); err != nil {
			t.Fatal(err)
		}
		for _, tp := range as.Topics {
			held = append(held, tp.Partitions...)
		}
	}
	t.Logf("after %v (10 session timeouts): group %s, generation %d, %d members; dead member %s holds partitions %v", 10*session, d.State, gen, len(d.Members), a, held)
	if d.State != "Stable" || len(d.Members) != 2 || !slices.Equal(held, []int32{1, 2}) {
		t.Fatalf("kfake expired the member killed in its join (state %s, %d members, A holds %v): the limitation is gone", d.State, len(d.Members), held)
	}
}
