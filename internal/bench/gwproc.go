package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/kafkagate/kafkagate/internal/devenv"
)

// gatewayBinary is the built `gateway` command: Config.GatewayBinary,
// else `gateway` beside the bench executable (make bench builds both into
// .bin), else one built now with `go build` into the run's directory.
func (e *env) gatewayBinary(ctx context.Context) (string, error) {
	if e.gwBin != "" {
		return e.gwBin, nil
	}
	if b := e.cfg.GatewayBinary; b != "" {
		e.gwBin = b
		return b, nil
	}
	if self, err := e.cfg.self(); err == nil {
		if p := filepath.Join(filepath.Dir(self), "gateway"); isExecutable(p) {
			e.gwBin = p
			return p, nil
		}
	}
	p := filepath.Join(e.dir, "gateway")
	e.progress("building the gateway command (go build ./cmd/gateway)")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", p, "github.com/kafkagate/kafkagate/cmd/gateway")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build gateway: %w: %s", err, strings.TrimSpace(string(out)))
	}
	e.gwBin = p
	return p, nil
}

func isExecutable(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir() && st.Mode()&0o111 != 0
}

// startGateway runs the gateway command (args after the global flags:
// "serve ..." or "bridge ...") with benchConfig against the bench's Vault
// and broker, and waits until metricsURL answers. The process is e.gwProc
// until stopGateway.
func (e *env) startGateway(ctx context.Context, metricsURL string, args ...string) error {
	if e.gwProc != nil {
		return fmt.Errorf("gateway process already running")
	}
	cfg, err := benchPolicies()
	if err != nil {
		return err
	}
	if err := e.ensureKeys(ctx, cfg); err != nil {
		return err
	}
	bin, err := e.gatewayBinary(ctx)
	if err != nil {
		return err
	}
	cfgPath := filepath.Join(e.dir, "bench.ini")
	if err := os.WriteFile(cfgPath, []byte(benchConfig), 0o600); err != nil {
		return fmt.Errorf("gateway config: %w", err)
	}
	argv := append([]string{"--config", cfgPath, "--brokers", strings.Join(e.brokers, ","), "--log-level", "warn"}, args...)
	cmd := exec.Command(bin, argv...)
	cmd.Env = append(os.Environ(), "VAULT_ADDR="+e.vault.Addr, "VAULT_TOKEN="+e.vault.Token)
	c, err := startChild("gateway "+args[0], cmd)
	if err != nil {
		return err
	}
	if err := c.waitHTTP(ctx, metricsURL, 30*time.Second); err != nil {
		_ = c.stop()
		return err
	}
	e.gwProc = c
	return nil
}

// stopGateway stops the gateway process, if one runs.
func (e *env) stopGateway() error {
	if e.gwProc == nil {
		return nil
	}
	c := e.gwProc
	e.gwProc = nil
	if err := c.stop(); err != nil {
		return err
	}
	select {
	case <-c.done:
	default:
	}
	if c.err != nil && !strings.Contains(c.err.Error(), "signal: terminated") {
		return fmt.Errorf("%s: %w: %s", c.name, c.err, strings.TrimSpace(c.log.String()))
	}
	return nil
}

// loopbackAddr is 127.0.0.1 with a free port.
func loopbackAddr() (string, error) {
	port, err := devenv.FreePort()
	if err != nil {
		return "", err
	}
	return "127.0.0.1:" + strconv.Itoa(port), nil
}
