package testkit

import (
	"encoding/csv"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kafkagate/kafkagate/internal/devenv"
)

// HAProxyOptions configure a load balancer started by StartHAProxy.
type HAProxyOptions struct {
	// Servers are the backends' host:port, named s0, s1, ... in order.
	Servers []string
	// Check is the health check's path (GET); a server is up while it
	// answers 200. Default /readyz.
	Check string
	// Inter is the interval between health checks; default 200 ms. A
	// server goes down after Fall failed checks (default 2) and up after
	// Rise good ones (default 1).
	Inter      time.Duration
	Fall, Rise int
}

// HAProxy is Debian's haproxy balancing HTTP over loopback backends
// (round robin), health-checking each, resending a request that found no
// connection or an empty answer to another server (retries 3, option
// redispatch), with a stats page for ServerStates.
type HAProxy struct {
	Addr  string // host:port of the frontend
	URL   string // http://Addr
	stats string // http://host:port/stats
	Proc  *Process
}

// HAProxyBin is the path of haproxy. Without it t is skipped, or fails
// when KAFKAGATE_REQUIRE_HAPROXY is set (make test sets it; make deps
// installs haproxy).
func HAProxyBin(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("KAFKAGATE_HAPROXY_BIN"); p != "" {
		return p
	}
	for _, p := range []string{"haproxy", "/usr/sbin/haproxy"} {
		if bin, err := exec.LookPath(p); err == nil {
			return bin
		}
	}
	if os.Getenv("KAFKAGATE_REQUIRE_HAPROXY") != "" {
		t.Fatal("haproxy is not installed (make deps installs it)")
	}
	t.Skip("haproxy not installed")
	return ""
}

// StartHAProxy starts haproxy in the foreground on free loopback ports
// with a generated configuration, waits until it accepts connections, and
// stops it when t ends.
func StartHAProxy(t testing.TB, o HAProxyOptions) *HAProxy {
	t.Helper()
	bin := HAProxyBin(t)
	if o.Check == "" {
		o.Check = "/readyz"
	}
	if o.Inter <= 0 {
		o.Inter = 200 * time.Millisecond
	}
	if o.Fall <= 0 {
		o.Fall = 2
	}
	if o.Rise <= 0 {
		o.Rise = 1
	}
	dir := t.TempDir()
	var lastOut string
	for attempt := 0; attempt < 3; attempt++ {
		front, stats := freeLoopback(t), freeLoopback(t)
		cfg := WriteFile(t, dir, "haproxy.cfg", haproxyConfig(o, front, stats))
		if out, err := exec.Command(bin, "-c", "-q", "-f", cfg).CombinedOutput(); err != nil {
			t.Fatalf("haproxy -c: %v\n%s", err, out)
		}
		p := StartProcess(t, "haproxy", exec.Command(bin, "-db", "-f", cfg))
		h := &HAProxy{Addr: front, URL: "http://" + front, stats: "http://" + stats + "/stats;csv", Proc: p}
		if h.waitListening(30 * time.Second) {
			t.Cleanup(func() {
				_ = p.Signal(syscall.SIGTERM)
				if _, err := p.Wait(10 * time.Second); err != nil {
					p.Kill(t)
				}
			})
			return h
		}
		lastOut = p.Out.String()
		if !p.Exited() {
			p.Kill(t)
		}
	}
	t.Fatalf("haproxy did not start:\n%s", lastOut)
	return nil
}

func freeLoopback(t testing.TB) string {
	t.Helper()
	p, err := devenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return "127.0.0.1:" + strconv.Itoa(p)
}

// haproxyConfig is the configuration: one frontend on front, one backend
// of o.Servers, the stats page on stats. Requests are logged to stdout.
// The health check is HTTP/1.1 with a loopback Host (the gateway refuses
// a request without one when authentication is off).
func haproxyConfig(o HAProxyOptions, front, stats string) string {
	ms := func(d time.Duration) string { return strconv.FormatInt(d.Milliseconds(), 10) + "ms" }
	var b strings.Builder
	fmt.Fprintf(&b, `global
    maxconn 4096
    log stdout format raw local0 info

defaults
    mode http
    option httplog
    option dontlognull
    timeout connect 2s
    timeout client 120s
    timeout server 120s
    timeout http-keep-alive 60s
    timeout check 2s
    retries 3
    option redispatch 1
    retry-on conn-failure empty-response

frontend fe
    bind %s
    log global
    default_backend be

backend be
    balance roundrobin
    option httpchk
    http-check send meth GET uri %s ver HTTP/1.1 hdr Host localhost
    http-check expect status 200
    default-server inter %s fastinter %s downinter %s fall %d rise %d
`, front, o.Check, ms(o.Inter), ms(o.Inter), ms(o.Inter), o.Fall, o.Rise)
	for i, s := range o.Servers {
		fmt.Fprintf(&b, "    server s%d %s check\n", i, s)
	}
	fmt.Fprintf(&b, `
listen stats
    bind %s
    stats enable
    stats uri /stats
`, stats)
	return b.String()
}

func (h *HAProxy) waitListening(limit time.Duration) bool {
	for deadline := time.Now().Add(limit); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if h.Proc.Exited() {
			return false
		}
		if c, err := net.DialTimeout("tcp", h.Addr, time.Second); err == nil {
			c.Close()
			return true
		}
	}
	return false
}

// ServerState is one backend server as haproxy's stats page shows it.
type ServerState struct {
	Name     string // s0, s1, ...
	Status   string // UP, DOWN, ... (haproxy's words)
	Sessions int    // connections it has received in total (stot)
	// Retries and Redispatches count requests haproxy sent again
	// (wretr) and sent again to another server (wredis) after this
	// server failed them.
	Retries, Redispatches int
}

// Up reports whether the server is in service.
func (s ServerState) Up() bool { return strings.HasPrefix(s.Status, "UP") }

// ServerStates reads the backend's servers from the stats page.
func (h *HAProxy) ServerStates() ([]ServerState, error) {
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(h.stats)
	if err != nil {
		return nil, fmt.Errorf("haproxy stats: %w", err)
	}
	defer resp.Body.Close()
	r := csv.NewReader(resp.Body)
	r.FieldsPerRecord = -1
	rows, err := r.ReadAll()
	if err != nil {
		return nil, fmt.Errorf("haproxy stats: %w", err)
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("haproxy stats: empty")
	}
	col := map[string]int{}
	for i, name := range rows[0] {
		col[strings.TrimPrefix(strings.TrimSpace(name), "# ")] = i
	}
	var out []ServerState
	for _, row := range rows[1:] {
		if len(row) <= col["stot"] || row[col["pxname"]] != "be" || !strings.HasPrefix(row[col["svname"]], "s") {
			continue
		}
		num := func(name string) int {
			n, _ := strconv.Atoi(row[col[name]])
			return n
		}
		out = append(out, ServerState{Name: row[col["svname"]], Status: row[col["status"]], Sessions: num("stot"),
			Retries: num("wretr"), Redispatches: num("wredis")})
	}
	return out, nil
}

// WaitServers waits until haproxy sees each named server up (want true)
// or down (false), failing t after limit.
func (h *HAProxy) WaitServers(t testing.TB, want map[string]bool, limit time.Duration) {
	t.Helper()
	var last []ServerState
	for deadline := time.Now().Add(limit); ; time.Sleep(50 * time.Millisecond) {
		states, err := h.ServerStates()
		if err == nil {
			last = states
			ok := 0
			for _, s := range states {
				if up, named := want[s.Name]; named && s.Up() == up {
					ok++
				}
			}
			if ok == len(want) {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("haproxy servers not %v within %s: %+v (%v)\nhaproxy log:\n%s", want, limit, last, err, h.Proc.Out.String())
		}
	}
}
