package kafka

// Classify marks a sarama error the way Produce and Read do: failures to
// reach Kafka wrap ErrUnavailable, oversized records wrap ErrTooLarge, and
// any other error is returned as it is. kgclient, whose API is sarama's,
// uses it to decide between retrying and failing; the bridge to log
// transaction failures by kind.
func Classify(err error) error { return classify(err) }
