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
// whose connection dies while its JoinGroup is parked may never be
// expired. kfake arms a member's session timer only when a reply to it
// is delivered (groups.go, group.reply), and the pending-member timer
// was stopped when the member entered the join (addMemberAndRebalance ->
// stopPending). Whether the reply to a closed connection counts as
// delivered is a coin flip: clientReq.reply selects between a send on
// the connection's buffered response channel and the connection's done
// channel, both ready. So about half the dead members stay in the
// group, with the partitions the leader gave them, for good; Apache
// Kafka schedules every member's heartbeat expiry when the join
// completes, whether or not the answer arrives.
//
// Member L survives; twelve members join and their connections close
// while their JoinGroups are parked; L rejoins and gives each a
// partition. After 10 session timeouts of L heartbeating (within the
// rebalance timeout, which would drop them), at least one dead member
// (all twelve but with odds of 1 in 4096) is still in the group
// holding its partition. If this test fails, kfake has been fixed: the
// dynamic variant of TestBuiltBridgeTenSIGKILLsIn20s can come back.
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

	// Twelve members join; their JoinGroups are parked until L
	// rejoins. Then their connections close, as SIGKILLed processes'
	// would.
	const dead = 12
	var (
		deadIDs []string
		joined  = make(chan error, dead)
		clients []*kgo.Client
	)
	for i := 0; i < dead; i++ {
		ac := newClient()
		a := memberID(ac)
		deadIDs = append(deadIDs, a)
		clients = append(clients, ac)
		go func() { // owned by this test: ends when ac closes
			_, err := join(ac, a)
			joined <- err
		}()
		for {
			d := describe(lc)
			if d.State == "PreparingRebalance" && len(d.Members) == i+2 {
				break
			}
			if ctx.Err() != nil {
				t.Fatalf("join %d never parked: %+v", i+1, d)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	for _, ac := range clients {
		ac.Close()
	}
	for range dead {
		if err := <-joined; err == nil {
			t.Fatal("a parked join was answered before its connection closed")
		}
	}
	time.Sleep(200 * time.Millisecond) // kfake notices the closed connections

	// L sees the rebalance, rejoins, leads, and gives dead member i
	// partition i+1.
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
	if r.LeaderID != l || len(ids) != dead+1 {
		t.Fatalf("L's rejoin: leader %s, members %v; want L leading %d members", r.LeaderID, ids, dead+1)
	}
	gen := r.Generation
	as := []kmsg.SyncGroupRequestGroupAssignment{{MemberID: l, MemberAssignment: assignment(0)}}
	for i, a := range deadIDs {
		as = append(as, kmsg.SyncGroupRequestGroupAssignment{MemberID: a, MemberAssignment: assignment(int32(i + 1))})
	}
	sync(lc, l, gen, as)

	// L heartbeats for 10 session timeouts (a dead member that expires
	// starts a rebalance L does not join); the dead ones never do.
	until := time.Now().Add(10 * session)
	for time.Now().Before(until) {
		if err := heartbeat(lc, l, gen); err != nil && err != kerr.RebalanceInProgress {
			t.Fatalf("L's heartbeat in generation %d: %v", gen, err)
		}
		time.Sleep(session / 5)
	}
	d := describe(lc)
	kept := map[string][]int32{}
	for _, m := range d.Members {
		if m.MemberID == l {
			continue
		}
		var held []int32
		kept[m.MemberID] = held
		if len(m.MemberAssignment) == 0 {
			continue // a group in PreparingRebalance describes no assignments
		}
		var as kmsg.ConsumerMemberAssignment
		if err := as.ReadFrom(m.MemberAssignment); err != nil {
			t.Fatal(err)
		}
		for _, tp := range as.Topics {
			held = append(held, tp.Partitions...)
		}
		kept[m.MemberID] = held
	}
	t.Logf("after %v (10 session timeouts): group %s, %d members; %d of %d members killed in their join still listed (assignments, when the state shows them: %v)", 10*session, d.State, len(d.Members), len(kept), dead, kept)
	if len(kept) == 0 {
		t.Fatalf("kfake expired every member killed in its join (state %s): the limitation is gone", d.State)
	}
	for i, a := range deadIDs {
		if held, ok := kept[a]; ok && held != nil && !slices.Equal(held, []int32{int32(i + 1)}) {
			t.Errorf("dead member %d holds %v, want [%d]", i+1, held, i+1)
		}
	}
}
