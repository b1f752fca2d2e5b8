package bridge_test

import (
	"cmp"
	"fmt"
	"log/slog"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/kafkagate/kafkagate/internal/bridge"
	"github.com/kafkagate/kafkagate/internal/testkit"
)

// TestBridgeScaleOut: three bridges share a 6-partition source topic
// under a steady load; a fourth joins, then one of the first three
// leaves. With the default cooperative-sticky assignment only the
// partitions that change owner stop (their claims end once); every other
// claim keeps running through both rebalances. The same run with the
// eager "sticky" assignment shows what it costs instead: every claim ends
// at each rebalance (counted and printed, not asserted). Nothing is lost,
// no plaintext is stored, duplicates are counted.
func TestBridgeScaleOut(t *testing.T) {
	if testing.Short() {
		t.Skip("four bridges and two rebalances under load (-short skips it)")
	}
	t.Run("cooperative", func(t *testing.T) { scaleOut(t, "") })
	t.Run("eager", func(t *testing.T) { scaleOut(t, "sticky") })
}

func scaleOut(t *testing.T, assignment string) {
	cooperative := assignment == ""
	f := setup(t, 10*time.Second, nil)
	f.createTopic("plain", 6)
	f.createTopic("enc", 6)
	f.createTopic("enc.dlq", 1)
	stop := f.producing(t)

	var members []*member
	add := func() *member {
		m := &member{name: fmt.Sprintf("bridge-%d", len(members)+1), logs: &testkit.SyncBuffer{}}
		cfg := f.config("plain", "enc")
		cfg.Assignment = assignment
		cfg.Logger = slog.New(slog.NewTextHandler(m.logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
		m.r = f.start(cfg)
		members = append(members, m)
		return m
	}
	for range 3 {
		add()
	}
	owners := waitAssigned(t, &members, 6, 3)
	t.Logf("three bridges: %v", owners)
	before := snapshot(members)
	f.waitGrowth(t, 300)

	// Scale out: a fourth bridge.
	joined := time.Now()
	fourth := add()
	owners = waitAssigned(t, &members, 6, 4)
	tookJoin := time.Since(joined)
	if cooperative {
		moved := checkCooperative(t, members, before, fourth)
		t.Logf("cooperative: a fourth joined: %v (took %v); partitions moved %v, claims ended on the three others %d",
			owners, tookJoin.Round(time.Millisecond), moved, len(moved))
	} else {
		t.Logf("eager: a fourth joined: %v (took %v); claims ended on the three others %d",
			owners, tookJoin.Round(time.Millisecond), ended(members, before))
	}
	f.waitGrowth(t, 300)

	// Scale in: the second bridge leaves.
	before = snapshot(members)
	left := time.Now()
	leaving := members[1]
	handed := leaving.owned()
	leaving.r.stop(t)
	leaving.gone = true
	owners = waitAssigned(t, &members, 6, 3)
	tookLeave := time.Since(left)
	if !cooperative {
		t.Logf("eager: %s left: %v (took %v); its partitions %v taken over, claims ended on the three others %d",
			leaving.name, owners, tookLeave.Round(time.Millisecond), handed, ended(members, before))
	} else if revoked := checkCooperative(t, members, before, nil); len(revoked) != 0 {
		t.Errorf("a member left, yet partitions %v were revoked from the members that stayed", revoked)
	} else {
		t.Logf("cooperative: %s left: %v (took %v); its partitions %v taken over, claims ended on the three others 0",
			leaving.name, owners, tookLeave.Round(time.Millisecond), handed)
	}
	f.waitGrowth(t, 300)

	n := stop()
	f.waitCommitted(bridge.DefaultGroup("enc"), "plain", 3*time.Minute)
	for _, m := range members {
		if !m.gone {
			m.r.stop(t)
		}
	}
	targets, dups := f.check(t, n)
	suspected := 0
	for _, m := range members {
		for _, s := range suspectedLine.FindAllStringSubmatch(m.logs.String(), -1) {
			k, _ := strconv.Atoi(s[1])
			suspected += k
		}
	}
	t.Logf("%s, scale 3 → 4 → 3 on 6 partitions: records %d, target records %d, lost 0, duplicates %d (bridges reported %d suspected), plaintext found 0",
		cmp.Or(assignment, "cooperative-sticky"), n, targets, dups, suspected)
}

// ended counts the claims that ended since before on members still running.
func ended(ms []*member, before map[*member]int) int {
	n := 0
	for _, m := range ms {
		if at, ok := before[m]; ok && !m.gone {
			for _, e := range m.events()[at:] {
				if e < 0 {
					n++
				}
			}
		}
	}
	return n
}

// member is one in-process bridge of a scale test.
type member struct {
	name string
	r    *running
	logs *testkit.SyncBuffer
	gone bool // stopped by the test
}

// claimEvent matches the bridge's log of a claim starting or ending.
var claimEvent = regexp.MustCompile(`msg="partition claim (started|ended)".* partition=(\d+)`)

// events returns the bridge's claim events so far, in order: +p for a
// start of partition p, -p-1 for an end.
func (m *member) events() []int {
	var out []int
	for _, e := range claimEvent.FindAllStringSubmatch(m.logs.String(), -1) {
		p, _ := strconv.Atoi(e[2])
		if e[1] == "started" {
			out = append(out, p)
		} else {
			out = append(out, -p-1)
		}
	}
	return out
}

// owned returns the partitions whose claims are running in m.
func (m *member) owned() []int {
	set := map[int]bool{}
	for _, e := range m.events() {
		if e >= 0 {
			set[e] = true
		} else {
			delete(set, -e-1)
		}
	}
	return slices.Sorted(maps.Keys(set))
}

// snapshot returns how many claim events each member has logged.
func snapshot(ms []*member) map[*member]int {
	out := map[*member]int{}
	for _, m := range ms {
		out[m] = len(m.events())
	}
	return out
}

// waitAssigned waits until the running members (want of them) together
// hold each of parts partitions exactly once, balanced as the sticky
// assignors leave them (parts/want each, or one more); it returns the
// assignment.
func waitAssigned(t *testing.T, ms *[]*member, parts, want int) map[string][]int {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		owners := map[string][]int{}
		count := map[int]int{}
		ok := true
		for _, m := range *ms {
			if m.gone {
				continue
			}
			o := m.owned()
			owners[m.name] = o
			// The sticky assignors end balanced: each member holds
			// parts/want partitions, or one more. Anything else is a
			// rebalance still in progress.
			if len(o) < parts/want || len(o) > (parts+want-1)/want {
				ok = false
			}
			for _, p := range o {
				count[p]++
			}
		}
		for p := range parts {
			if count[p] != 1 {
				ok = false
			}
		}
		if ok && len(owners) == want {
			return owners
		}
		if time.Now().After(deadline) {
			t.Fatalf("no stable assignment of %d partitions over %d bridges within 2 minutes: %v", parts, want, owners)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// checkCooperative fails t if a member that was running at before ended a
// claim since, other than on a partition it no longer holds (a move), or
// restarted one it still holds. It returns the partitions that moved off
// the members of before (to joined, when one joined).
func checkCooperative(t *testing.T, ms []*member, before map[*member]int, joined *member) (moved []int) {
	t.Helper()
	for _, m := range ms {
		at, ok := before[m]
		if !ok || m.gone {
			continue
		}
		now := m.owned()
		for _, e := range m.events()[at:] {
			switch {
			case e < 0 && slices.Contains(now, -e-1):
				t.Errorf("%s: the claim of partition %d ended and restarted in the rebalance (a revocation of a partition that did not move)", m.name, -e-1)
			case e < 0:
				moved = append(moved, -e-1)
			case joined != nil:
				t.Errorf("%s: started a claim of partition %d while a member joined (want only revocations)", m.name, e)
			}
		}
	}
	if joined != nil {
		got := joined.owned()
		slices.Sort(moved)
		if !slices.Equal(moved, got) {
			t.Errorf("partitions revoked from the others %v, but the new member holds %v", moved, got)
		}
	}
	return moved
}

// waitGrowth waits for the target to grow by n records.
func (f *fixture) waitGrowth(t *testing.T, n int64) {
	t.Helper()
	base := f.total("enc")
	deadline := time.Now().Add(90 * time.Second)
	for f.total("enc") < base+n {
		if time.Now().After(deadline) {
			t.Fatalf("the target did not grow by %d records within 90 s", n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
