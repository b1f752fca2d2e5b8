package kafka

// Classify marks a sarama error the way Produce and Read do: failures to
// reach Kafka wrap ErrUnavailable, oversized records wrap ErrTooLarge, and
// any other error is returned as it is. Packages that drive sarama
// themselves (the bridge, kgclient) use it to decide between retrying and
// dead-lettering.
func Classify(err error) error { return classify(err) }
