package bench

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/kafkagate/kafkagate/internal/devenv"
)

// BrokerEnv, when set to a port, makes the bench executable run the kfake
// broker on 127.0.0.1:port (RunBroker) instead of the bench, so the
// broker's CPU time is a process's own.
const BrokerEnv = "KAFKAGATE_BENCH_BROKER"

// brokerPartitions is the partition count of auto-created topics.
const brokerPartitions = 4

// RunBroker is the broker process: kfake on the port in BrokerEnv; it
// prints "ready ADDR" and runs until its standard input ends, SIGTERM or
// ctx is done. It returns the exit code.
func RunBroker(ctx context.Context) int {
	port, err := strconv.Atoi(os.Getenv(BrokerEnv))
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench broker: %s: %v\n", BrokerEnv, err)
		return 2
	}
	c, err := devenv.StartKafka(devenv.KafkaOptions{Port: port, Partitions: brokerPartitions})
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench broker:", err)
		return 1
	}
	defer c.Close()
	eof := make(chan struct{})
	go func() { // ends at stdin's EOF (the parent closed it or exited)
		_, _ = io.Copy(io.Discard, os.Stdin)
		close(eof)
	}()
	fmt.Printf("ready %s\n", strings.Join(c.ListenAddrs(), ","))
	select {
	case <-eof:
	case <-ctx.Done():
	}
	return 0
}

// startBroker runs self as the broker process and waits for it to listen.
func startBroker(ctx context.Context, self string) (*child, []string, error) {
	port, err := devenv.FreePort()
	if err != nil {
		return nil, nil, fmt.Errorf("broker: %w", err)
	}
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), BrokerEnv+"="+strconv.Itoa(port))
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, nil, fmt.Errorf("broker: %w", err)
	}
	c, err := startChild("broker", cmd)
	if err != nil {
		return nil, nil, err
	}
	ready := make(chan string, 1)
	go func() { // ends at the child's stdout EOF
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if addr, ok := strings.CutPrefix(sc.Text(), "ready "); ok {
				ready <- addr
			}
		}
	}()
	select {
	case addr := <-ready:
		return c, strings.Split(addr, ","), nil
	case <-c.done:
		return nil, nil, c.exited()
	case <-time.After(30 * time.Second):
		_ = c.stop()
		return nil, nil, fmt.Errorf("broker: not ready after 30 s: %s", c.log.String())
	case <-ctx.Done():
		_ = c.stop()
		return nil, nil, ctx.Err()
	}
}

// self is the bench executable, re-run for the broker and the files
// section's children.
func (c Config) self() (string, error) {
	if c.Self != "" {
		return c.Self, nil
	}
	p, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("bench executable: %w", err)
	}
	return p, nil
}
