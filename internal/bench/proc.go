package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// The processes whose CPU time a section reads. Every section runs each of
// them as a process of its own, so their CPU time is theirs alone.
const (
	procVault   = "vault"   // the Vault dev server
	procGateway = "gateway" // the built `gateway serve` or `gateway bridge`
	procBroker  = "broker"  // kfake, in a re-executed bench process (RunBroker)
	procClient  = "client"  // the bench process: load generator, producing client
)

// cpuProcs is the column order of the per-process CPU figures.
var cpuProcs = []string{procVault, procGateway, procBroker, procClient}

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat's utime and stime:
// 100 on every Linux architecture Go supports (`getconf CLK_TCK`).
const clockTicks = 100

// ProcCPU is one process's CPU time (user + system) over a measured
// interval, and what it comes to per unit of work.
type ProcCPU struct {
	Process     string  `json:"process"`
	CPUSec      float64 `json:"cpu_sec"`
	USPerRecord float64 `json:"us_per_record"`
	// USPerField is per encrypted field (0 where records have none).
	USPerField float64 `json:"us_per_field,omitempty"`
}

// cpuSeconds is the user + system CPU time of process pid so far, from
// /proc/<pid>/stat.
func cpuSeconds(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("cpu time of %d: %w", pid, err)
	}
	// The command name (field 2) is in parentheses and may hold spaces:
	// the fields counted start after its closing parenthesis.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("cpu time of %d: malformed stat %q", pid, s)
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("cpu time of %d: short stat %q", pid, s)
	}
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("cpu time of %d: %w", pid, err)
	}
	return float64(ut+st) / clockTicks, nil
}

// selfCPUSeconds is this process's user + system time, from getrusage
// (finer than clock ticks).
func selfCPUSeconds() (float64, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, fmt.Errorf("getrusage: %w", err)
	}
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return tv(ru.Utime) + tv(ru.Stime), nil
}

// cpuMeter reads the CPU time of a set of processes at its start and at
// its stop.
type cpuMeter struct {
	pids  map[string]int // 0: this process
	start map[string]float64
}

func procCPUSeconds(pid int) (float64, error) {
	if pid == 0 {
		return selfCPUSeconds()
	}
	return cpuSeconds(pid)
}

// meter starts measuring the processes that are running now: Vault, the
// broker, the gateway process if one runs, and this process.
func (e *env) meter() *cpuMeter {
	m := &cpuMeter{pids: map[string]int{procClient: 0}, start: map[string]float64{}}
	if e.vault != nil {
		m.pids[procVault] = e.vault.Pid()
	}
	if e.broker != nil {
		m.pids[procBroker] = e.broker.pid()
	}
	if e.gwProc != nil {
		m.pids[procGateway] = e.gwProc.pid()
	}
	for name, pid := range m.pids {
		if s, err := procCPUSeconds(pid); err == nil {
			m.start[name] = s
		}
	}
	return m
}

// stop reads the processes again and returns each one's CPU time over the
// interval, per record and per field (fields 0: none), in cpuProcs order.
func (m *cpuMeter) stop(records, fields float64) []ProcCPU {
	var out []ProcCPU
	for _, name := range cpuProcs {
		pid, ok := m.pids[name]
		s0, ok0 := m.start[name]
		if !ok || !ok0 {
			continue
		}
		s1, err := procCPUSeconds(pid)
		if err != nil {
			continue
		}
		p := ProcCPU{Process: name, CPUSec: s1 - s0}
		if records > 0 {
			p.USPerRecord = p.CPUSec * 1e6 / records
		}
		if fields > 0 {
			p.USPerField = p.CPUSec * 1e6 / fields
		}
		out = append(out, p)
	}
	return out
}

// cpuOf is the figure of process name in cs, or nil.
func cpuOf(cs []ProcCPU, name string) *ProcCPU {
	for i := range cs {
		if cs[i].Process == name {
			return &cs[i]
		}
	}
	return nil
}

// child is a process the bench started and owns: stopped by closing its
// standard input (the broker) or by SIGTERM (the gateway), killed if it
// has not exited within 10 s.
type child struct {
	name  string
	cmd   *exec.Cmd
	stdin io.WriteCloser
	done  chan struct{}
	err   error // the exit status, once done is closed
	log   *tailBuffer
}

func (c *child) pid() int { return c.cmd.Process.Pid }

// startChild starts cmd, its output kept (the last 8 KiB) for errors.
func startChild(name string, cmd *exec.Cmd) (*child, error) {
	c := &child{name: name, cmd: cmd, done: make(chan struct{}), log: &tailBuffer{max: 8 << 10}}
	if cmd.Stdout == nil {
		cmd.Stdout = c.log
	}
	cmd.Stderr = c.log
	// Should the bench die without stopping it, the child gets SIGTERM.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	c.stdin = stdin
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() { // ends when the process exits
		c.err = cmd.Wait()
		close(c.done)
	}()
	return c, nil
}

// stop asks the child to exit (stdin closed, then SIGTERM) and waits;
// after 10 s it kills it.
func (c *child) stop() error {
	_ = c.stdin.Close()
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(10 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.done
		return fmt.Errorf("%s did not exit within 10 s: killed", c.name)
	}
	return nil
}

// exited is the error to report when the child ended before it should.
func (c *child) exited() error {
	return fmt.Errorf("%s exited: %v: %s", c.name, c.err, strings.TrimSpace(c.log.String()))
}

// waitHTTP polls url until it answers 200, the child exits or limit passes.
func (c *child) waitHTTP(ctx context.Context, url string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	hc := &http.Client{Timeout: time.Second}
	defer hc.CloseIdleConnections()
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return fmt.Errorf("%s: %w", c.name, err)
		}
		if resp, err := hc.Do(req); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-c.done:
			return c.exited()
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: %s not answering after %s: %s", c.name, url, limit, strings.TrimSpace(c.log.String()))
		}
	}
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	b   []byte
	max int
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = append(t.b[:0], t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}

// scrape reads a Prometheus text endpoint into "name{labels}" → value.
func scrape(ctx context.Context, url string) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", url, err)
	}
	// Uncompressed: gzip would charge the measured process for the
	// bench's own polling.
	req.Header.Set("Accept-Encoding", "identity")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scrape %s: HTTP %d", url, resp.StatusCode)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		out[line[:i]] = v
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("scrape %s: %w", url, err)
	}
	return out, nil
}

// metricSum adds the series of metric name whose labels contain every
// one of labels (e.g. `op="encrypt"`).
func metricSum(m map[string]float64, name string, labels ...string) float64 {
	var sum float64
	for k, v := range m {
		n, rest, _ := strings.Cut(k, "{")
		if n != name {
			continue
		}
		ok := true
		for _, l := range labels {
			if !strings.Contains(rest, l) {
				ok = false
				break
			}
		}
		if ok {
			sum += v
		}
	}
	return sum
}
