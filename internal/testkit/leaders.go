package testkit

import (
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
)

// MoveLeaders moves the leader of every partition of topics to the next
// broker of c every 300 ms for d, and the group and transaction
// coordinators every 3 s; it returns how many of each it moved. kfake
// shares one log per partition between its brokers: a move changes which
// broker answers, not the data (no replication, ISR or truncation).
func MoveLeaders(t testing.TB, c *kfake.Cluster, topics []string, d time.Duration) (moves, coordinators int) {
	t.Helper()
	brokers := int32(len(c.ListenAddrs()))
	end := time.Now().Add(d)
	for round := 0; time.Now().Before(end); round++ {
		for _, topic := range topics {
			for _, p := range c.PartitionInfos(topic) {
				if err := c.MoveTopicPartition(topic, p.Partition, (p.Leader+1)%brokers); err != nil {
					t.Fatalf("move the leader of %s/%d: %v", topic, p.Partition, err)
				}
				moves++
			}
		}
		if round%10 == 5 {
			c.RehashCoordinators()
			coordinators++
		}
		time.Sleep(300 * time.Millisecond)
	}
	return moves, coordinators
}
