// Package devenv starts the real components kafkagate runs against in dev
// mode and in tests: a HashiCorp Vault dev server as a child process (the
// binary built by `make vault`) and an in-process kfake Kafka broker that
// speaks the Kafka protocol on 127.0.0.1. It also tears them down.
package devenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/vault/api"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/kafkagate/kafkagate/internal/vaultclient"
)

// ErrNoVaultBinary means no vault binary was found.
var ErrNoVaultBinary = errors.New("vault binary not found: run `make vault` (it builds .bin/vault)")

// FindVault locates the vault binary: $KAFKAGATE_VAULT_BIN, then .bin/vault
// in this checkout (searched upwards from the working directory), then PATH.
func FindVault() (string, error) {
	if p := os.Getenv("KAFKAGATE_VAULT_BIN"); p != "" {
		if isExec(p) {
			return p, nil
		}
		return "", fmt.Errorf("KAFKAGATE_VAULT_BIN=%s is not an executable: %w", p, ErrNoVaultBinary)
	}
	if dir, err := os.Getwd(); err == nil {
		for {
			p := filepath.Join(dir, ".bin", "vault")
			if isExec(p) {
				return p, nil
			}
			if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
				if _, err := os.Stat(filepath.Join(dir, "tools")); err == nil {
					break // repository root reached
				}
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				break
			}
			dir = parent
		}
	}
	if p, err := exec.LookPath("vault"); err == nil {
		return p, nil
	}
	return "", ErrNoVaultBinary
}

func isExec(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir() && st.Mode()&0o111 != 0
}

// VaultOptions configure a Vault dev server.
type VaultOptions struct {
	Binary string // default FindVault()
	Addr   string // listen address; default a free 127.0.0.1 port
	Token  string // root token; default random
	Log    io.Writer
}

// Vault is a running Vault dev server.
type Vault struct {
	Addr  string // http://127.0.0.1:port
	Token string
	cmd   *exec.Cmd
	done  chan struct{}
	mu    sync.Mutex
	err   error
}

// StartVault starts `vault server -dev`, waits until it is healthy, and
// enables the transit engine at transit/ (KV v2 is at secret/ in dev mode).
func StartVault(ctx context.Context, o VaultOptions) (*Vault, error) {
	bin := o.Binary
	if bin == "" {
		var err error
		if bin, err = FindVault(); err != nil {
			return nil, err
		}
	}
	token := o.Token
	if token == "" {
		token = "root-" + randHex(12)
	}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		addr := o.Addr
		if addr == "" {
			p, err := FreePort()
			if err != nil {
				return nil, err
			}
			addr = "127.0.0.1:" + strconv.Itoa(p)
		}
		v, err := startVault(ctx, bin, addr, token, o.Log)
		if err == nil {
			return v, nil
		}
		lastErr = err
		if o.Addr != "" {
			break
		}
	}
	return nil, lastErr
}

func startVault(ctx context.Context, bin, addr, token string, logw io.Writer) (*Vault, error) {
	cmd := exec.Command(bin, "server", "-dev",
		"-dev-listen-address="+addr,
		"-dev-root-token-id="+token,
		"-dev-no-store-token",
	)
	// A clean environment: nothing of the caller's Vault settings leaks in.
	cmd.Env = []string{"HOME=" + os.TempDir(), "PATH=" + os.Getenv("PATH"), "VAULT_LOG_LEVEL=warn"}
	if logw == nil {
		logw = io.Discard
	}
	cmd.Stdout, cmd.Stderr = logw, logw
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	v := &Vault{Addr: "http://" + addr, Token: token, cmd: cmd, done: make(chan struct{})}
	go func() {
		err := cmd.Wait()
		v.mu.Lock()
		v.err = err
		v.mu.Unlock()
		close(v.done)
	}()
	if err := v.waitHealthy(ctx, 60*time.Second); err != nil {
		_ = v.Stop()
		return nil, err
	}
	c, err := v.Client()
	if err != nil {
		_ = v.Stop()
		return nil, err
	}
	if err := c.API().Sys().MountWithContext(ctx, "transit", &api.MountInput{Type: "transit", Description: "kafkagate transit"}); err != nil {
		_ = v.Stop()
		return nil, fmt.Errorf("enable transit: %w", err)
	}
	return v, nil
}

func (v *Vault) waitHealthy(ctx context.Context, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	hc := &http.Client{Timeout: time.Second}
	for {
		select {
		case <-v.done:
			return fmt.Errorf("vault dev server exited during start: %v", v.exitErr())
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, v.Addr+"/v1/sys/health", nil)
		if err != nil {
			return fmt.Errorf("vault health request: %w", err)
		}
		resp, err := hc.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("vault dev server at %s not healthy after %s", v.Addr, limit)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (v *Vault) exitErr() error {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.err
}

// Client returns a vaultclient for this server with the root token.
func (v *Vault) Client() (*vaultclient.Client, error) {
	return vaultclient.New(vaultclient.Config{Addr: v.Addr, Token: v.Token, Timeout: 10 * time.Second})
}

// Pid is the server's process id.
func (v *Vault) Pid() int { return v.cmd.Process.Pid }

// Pause stops the server with SIGSTOP (fault injection); Resume continues it.
func (v *Vault) Pause() error  { return v.cmd.Process.Signal(syscall.SIGSTOP) }
func (v *Vault) Resume() error { return v.cmd.Process.Signal(syscall.SIGCONT) }

// Stop terminates the server and waits for it.
func (v *Vault) Stop() error {
	select {
	case <-v.done:
		return nil
	default:
	}
	_ = v.cmd.Process.Signal(syscall.SIGCONT)
	_ = v.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-v.done:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-v.cmd.Process.Pid, syscall.SIGKILL)
		<-v.done
	}
	return nil
}

// Done is closed when the server process has exited.
func (v *Vault) Done() <-chan struct{} { return v.done }

// KafkaOptions configure the embedded broker.
type KafkaOptions struct {
	Port            int    // 0: a random free port
	Partitions      int    // for auto-created topics; default 3
	MaxMessageBytes int    // broker message.max.bytes; default 16 MiB
	DataDir         string // persist the log (survives a restart on the same port)
	SeedTopics      []string
	FastGroups      bool // short group session timeouts, for tests
	// Brokers is the number of brokers (default 1). Partition leaders
	// are spread over them; kfake keeps one log per partition, shared by
	// all brokers (no replication).
	Brokers int
}

// StartKafka starts a kfake cluster (one broker unless o.Brokers says
// more) on 127.0.0.1.
func StartKafka(o KafkaOptions) (*kfake.Cluster, error) {
	if o.Brokers <= 0 {
		o.Brokers = 1
	}
	if o.Port > 0 && o.Brokers > 1 {
		return nil, fmt.Errorf("start embedded kafka: a fixed port needs a single broker, not %d", o.Brokers)
	}
	if o.Partitions <= 0 {
		o.Partitions = 3
	}
	if o.MaxMessageBytes <= 0 {
		o.MaxMessageBytes = 16 << 20
	}
	opts := []kfake.Opt{
		kfake.NumBrokers(o.Brokers),
		kfake.AllowAutoTopicCreation(),
		kfake.DefaultNumPartitions(o.Partitions),
		kfake.BrokerConfigs(map[string]string{"message.max.bytes": strconv.Itoa(o.MaxMessageBytes)}),
	}
	if o.Port > 0 {
		opts = append(opts, kfake.Ports(o.Port))
	}
	if o.DataDir != "" {
		opts = append(opts, kfake.DataDir(o.DataDir))
	}
	if len(o.SeedTopics) > 0 {
		opts = append(opts, kfake.SeedTopics(int32(o.Partitions), o.SeedTopics...))
	}
	if o.FastGroups {
		opts = append(opts, kfake.GroupMinSessionTimeout(100*time.Millisecond))
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return nil, fmt.Errorf("start embedded kafka: %w", err)
	}
	return c, nil
}

// FreePort returns a currently free TCP port on 127.0.0.1.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
