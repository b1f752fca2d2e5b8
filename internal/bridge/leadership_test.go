package bridge_test

import (
	"testing"
	"time"

	"github.com/kafkagate/kafkagate/internal/bridge"
	"github.com/kafkagate/kafkagate/internal/devenv"
	"github.com/kafkagate/kafkagate/internal/testkit"
)

// TestBridgeLeadershipMovesUnderLoad: on a three-broker kfake cluster, the
// leaders of every source and target partition move to another broker
// every 300 ms for 6 s, and the group coordinator moves twice, while a
// producer writes and two bridges encrypt. Both continue: nothing is lost,
// no plaintext is stored, duplicates are counted. kfake shares one log per
// partition between its brokers, so a move loses nothing by itself: this
// shows the clients follow a leader, not what a real election does to data.
func TestBridgeLeadershipMovesUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("leadership moves under load (-short skips it)")
	}
	env := testkit.StartWith(t, devenv.KafkaOptions{FastGroups: true, Brokers: 3})
	f := setupOn(t, env, 10*time.Second, nil)
	f.createTopic("plain", 6)
	f.createTopic("enc", 6)
	f.createTopic("enc.dlq", 1)
	stop := f.producing(t)
	for range 2 {
		f.start(f.config("plain", "enc"))
	}
	f.waitGrowth(t, 200)

	moves, rehashes := testkit.MoveLeaders(t, env.Kafka, []string{"plain", "enc"}, 6*time.Second)
	f.waitGrowth(t, 200) // still bridging after the last move
	n := stop()
	f.waitCommitted(bridge.DefaultGroup("enc"), "plain", 3*time.Minute)
	targets, dups := f.check(t, n)
	t.Logf("3 brokers, %d leader moves over plain and enc (6 partitions each) and %d coordinator moves in 6 s: records %d, target records %d, lost 0, duplicates %d, plaintext found 0",
		moves, rehashes, n, targets, dups)
}
