// Package bench measures kafkagate against its ceilings and against the
// original demo's one-call-per-field pattern, in one run on one machine, so
// every figure is read as a ratio to a reference measured minutes apart
// under the same conditions: Vault's own batch_input ceiling, the demo's
// pattern, REST produce through the real gateway handler, the encryptor
// bridge, envelope records against plain produce, files against plain
// produce and consume (with each side's peak memory measured in a child
// process), and the FPE wrapper against raw FF1. It starts its own Vault
// dev server, a kfake broker and the built gateway, each a process of its
// own, and reads each one's CPU time per record and per encrypted field
// (proc.go). cmd/bench (`make bench`) runs it; the figures never pass or
// fail a test.
package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/kafkagate/kafkagate/internal/devenv"
	"github.com/kafkagate/kafkagate/internal/gateway"
	"github.com/kafkagate/kafkagate/internal/vaultclient"
)

// Sections, in the order they run.
var Sections = []string{"vault", "demo", "fpe", "envelope", "rest", "bridge", "files", "proxy"}

// Config selects what to measure and how much.
type Config struct {
	Sections []string // default all (Sections)
	Quick    bool     // a fast smoke run: tiny sizes, short points

	Point       time.Duration // length of one measured point
	RESTClients []int         // closed-loop client counts tried for saturation
	// RESTRecordsPerRequest is the records of one produce request
	// (REST Proxy v3 streaming mode: concatenated JSON objects).
	RESTRecordsPerRequest int
	BridgeRecords         int
	EnvelopeRecords       int
	FileSizes             []int64
	Rounds                int // alternating rounds for paired comparisons (best of)

	// Self is the executable re-run for the files section's child
	// processes; default os.Executable().
	Self string
	// TmpDir holds received files, default os.TempDir().
	TmpDir string
	// VaultBinary, default devenv.FindVault().
	VaultBinary string
	// GatewayBinary is the built gateway command run for REST and the
	// bridge; default `gateway` beside the bench executable, else built.
	GatewayBinary string
	// GatewayProfileDir, when set, receives CPU profiles of the gateway
	// process (`serve --pprof`) over each REST saturation sweep.
	GatewayProfileDir string
	// Progress receives progress lines, default os.Stderr.
	Progress io.Writer
}

// Defaults fills in the zero fields, smaller with Quick.
func (c Config) Defaults() Config {
	if len(c.Sections) == 0 {
		c.Sections = Sections
	}
	def := func(quick, full int) int {
		if c.Quick {
			return quick
		}
		return full
	}
	if c.Point <= 0 {
		c.Point = time.Duration(def(300, 3000)) * time.Millisecond
	}
	if len(c.RESTClients) == 0 {
		if c.Quick {
			c.RESTClients = []int{16}
		} else {
			c.RESTClients = []int{32, 64, 128}
		}
	}
	if c.RESTRecordsPerRequest <= 0 {
		c.RESTRecordsPerRequest = 10
	}
	if c.BridgeRecords <= 0 {
		c.BridgeRecords = def(20_000, 200_000)
	}
	if c.EnvelopeRecords <= 0 {
		c.EnvelopeRecords = def(3000, 100_000)
	}
	if len(c.FileSizes) == 0 {
		if c.Quick {
			c.FileSizes = []int64{4 << 20}
		} else {
			c.FileSizes = []int64{256 << 20, 1 << 30}
		}
	}
	if c.Rounds <= 0 {
		c.Rounds = def(1, 3)
	}
	if c.TmpDir == "" {
		c.TmpDir = os.TempDir()
	}
	if c.Progress == nil {
		c.Progress = os.Stderr
	}
	return c
}

func (c Config) has(section string) bool { return slices.Contains(c.Sections, section) }

// Line is one row of the table: a figure, what it is compared with, the
// ratio, and the target it is held to.
type Line struct {
	ID        string  `json:"id"`
	Name      string  `json:"name"`
	Value     float64 `json:"value"`
	Unit      string  `json:"unit"`
	Detail    string  `json:"detail,omitempty"`
	Reference string  `json:"reference,omitempty"`
	Ratio     float64 `json:"ratio,omitempty"`
	RatioText string  `json:"ratio_text,omitempty"`
	Target    string  `json:"target,omitempty"`
	Met       *bool   `json:"met,omitempty"`
	// CPU is each process's CPU time per unit of work over the line's
	// measurement (vault, gateway, broker, client), CPUPer the unit the
	// table shows: "field" or "record".
	CPU    []ProcCPU `json:"cpu,omitempty"`
	CPUPer string    `json:"cpu_per,omitempty"`
	// Missing says why the line has no figure (section not run, package
	// not available, failure).
	Missing string `json:"missing,omitempty"`
}

// Report is a whole run.
type Report struct {
	Started    time.Time     `json:"started"`
	Took       time.Duration `json:"took_ns"`
	GoVersion  string        `json:"go_version"`
	CPUs       int           `json:"cpus"`
	LoadBefore string        `json:"load_before"`
	LoadAfter  string        `json:"load_after"`
	Quick      bool          `json:"quick"`
	Lines      []Line        `json:"lines"`
	// Capacity is each measured workload's cores per 100k fields (or
	// records) a second, per process: the lines' CPU columns scaled.
	Capacity []CapacityRow `json:"capacity"`
}

// LineIDs are the ids every report has, in table order.
var LineIDs = []string{
	"vault_ceiling", "demo_pattern",
	"rest_saturation", "rest_latency", "rest_gateway_cpu",
	"rest_single_saturation", "rest_single_vault_calls", "rest_single_latency", "rest_single_gateway_cpu",
	"bridge_vs_demo", "bridge_vs_vault", "bridge_gateway_cpu",
	"envelope_overhead", "envelope_client_cpu",
	"files_throughput", "files_rss",
	"fpe_wrapper",
	"proxy_produce_fields", "proxy_fetch_fields", "proxy_produce_envelope", "proxy_fetch_envelope",
}

// results are the raw measurements the lines are computed from.
type results struct {
	vault    *vaultCeiling
	demo     *demoResult
	rest     *restResult
	bridge   *bridgeResult
	envelope []envelopeResult
	files    []fileResult
	fpe      *fpeResult
	proxy    *proxyResult
	errs     map[string]error
}

// env is what the sections share: one Vault dev server and one broker.
type env struct {
	cfg     Config
	vault   *devenv.Vault
	vc      *vaultclient.Client
	broker  *child // kfake in a process of its own (broker.go)
	brokers []string
	log     *slog.Logger
	dir     string           // the run's scratch directory
	gw      *gateway.Gateway // the envelope client, assembled on first use (gateway.go)
	gwProc  *child           // the gateway process of the section running (gwproc.go)
	gwBin   string
	// keysReady: the bench policies' Vault keys exist.
	keysReady bool
}

func (e *env) progress(format string, args ...any) {
	fmt.Fprintf(e.cfg.Progress, "bench: "+format+"\n", args...)
}

// Run measures the selected sections and returns the report.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	cfg = cfg.Defaults()
	for _, s := range cfg.Sections {
		if !slices.Contains(Sections, s) {
			return nil, fmt.Errorf("bench: unknown section %q (known: %s)", s, strings.Join(Sections, ","))
		}
	}
	rep := &Report{Started: time.Now(), GoVersion: runtime.Version(), CPUs: runtime.NumCPU(), LoadBefore: loadAvg(), Quick: cfg.Quick}
	e := &env{cfg: cfg, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	e.progress("starting Vault dev server and kfake broker")
	self, err := cfg.self()
	if err != nil {
		return nil, err
	}
	if e.dir, err = os.MkdirTemp(cfg.TmpDir, "kafkagate-bench-"); err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	defer func() { _ = os.RemoveAll(e.dir) }()
	e.vault, err = devenv.StartVault(ctx, devenv.VaultOptions{Binary: cfg.VaultBinary})
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	defer func() { _ = e.vault.Stop() }()
	if e.vc, err = vaultclient.New(vaultclient.Config{Addr: e.vault.Addr, Token: e.vault.Token, Timeout: 60 * time.Second, Logger: e.log}); err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	if e.broker, e.brokers, err = startBroker(ctx, self); err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	defer func() { _ = e.broker.stop() }()
	defer func() {
		if e.gw != nil {
			_ = e.gw.Close()
		}
		_ = e.stopGateway()
	}()

	r := &results{errs: map[string]error{}}
	run := func(section string, fn func() error) {
		if !cfg.has(section) || ctx.Err() != nil {
			return
		}
		e.progress("section %s (load %s)", section, loadAvg())
		start := time.Now()
		if err := fn(); err != nil {
			r.errs[section] = err
			e.progress("section %s failed: %v", section, err)
			return
		}
		e.progress("section %s done in %s", section, time.Since(start).Round(time.Millisecond))
	}
	run("vault", func() (err error) { r.vault, err = e.vaultCeiling(ctx); return })
	run("demo", func() (err error) { r.demo, err = e.demoPattern(ctx); return })
	run("fpe", func() (err error) { r.fpe, err = e.fpeWrapper(); return })
	run("envelope", func() (err error) { r.envelope, err = e.envelopeSweep(ctx); return })
	run("rest", func() (err error) { r.rest, err = e.restProduce(ctx); return })
	run("bridge", func() (err error) { r.bridge, err = e.bridgeThroughput(ctx); return })
	run("files", func() (err error) { r.files, err = e.fileTransfer(ctx); return })
	run("proxy", func() (err error) { r.proxy, err = e.proxyThroughput(ctx); return })
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	rep.Lines = r.lines(cfg)
	rep.Capacity = capacity(rep.Lines)
	rep.LoadAfter = loadAvg()
	rep.Took = time.Since(rep.Started)
	return rep, nil
}

// loadAvg is /proc/loadavg's first three fields.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// WriteTable prints the report as an aligned table.
func (r *Report) WriteTable(w io.Writer) error {
	fmt.Fprintf(w, "kafkagate bench — %s, %d CPUs, load %s → %s, took %s%s\n\n", r.GoVersion, r.CPUs, r.LoadBefore, r.LoadAfter,
		r.Took.Round(time.Second), map[bool]string{true: " (quick: smoke sizes, figures not meaningful)"}[r.Quick])
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "measure\tfigure\tratio\ttarget\tmet\tCPU µs per\tvault\tgateway\tbroker\tclient\treference\tdetail")
	for _, l := range r.Lines {
		if l.Missing != "" {
			fmt.Fprintf(tw, "%s\tmissing\t\t%s\t-\t\t\t\t\t\t%s\t%s\n", l.Name, l.Target, l.Reference, l.Missing)
			continue
		}
		met := "-"
		if l.Met != nil {
			met = map[bool]string{true: "yes", false: "NO"}[*l.Met]
		}
		fmt.Fprintf(tw, "%s\t%s %s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", l.Name, human(l.Value), l.Unit, l.RatioText, l.Target, met, l.CPUPer, cpuCells(l), l.Reference, l.Detail)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(r.Capacity) == 0 {
		return nil
	}
	fmt.Fprintf(w, "\ncapacity: cores per 100,000 units/s (unit: field or record, as in the CPU column)\n\n")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "workload\tper\tvault\tgateway\tbroker\tclient\tgateway cores per Vault core")
	for _, c := range r.Capacity {
		cells := make([]string, len(cpuProcs))
		for i, name := range cpuProcs {
			cells[i] = "-"
			if v, ok := c.Cores[name]; ok {
				cells[i] = fmt.Sprintf("%.2f", v)
			}
		}
		ratio := "-"
		if c.GatewayPerVaultCore > 0 {
			ratio = fmt.Sprintf("%.2f", c.GatewayPerVaultCore)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", c.Name, c.CPUPer, strings.Join(cells, "\t"), ratio)
	}
	return tw.Flush()
}

// cpuCells are the vault, gateway, broker and client columns of l: µs of
// CPU per l.CPUPer, "-" for a process that took no part.
func cpuCells(l Line) string {
	cells := make([]string, len(cpuProcs))
	for i, name := range cpuProcs {
		cells[i] = "-"
		if p := cpuOf(l.CPU, name); p != nil {
			v := p.USPerRecord
			if l.CPUPer == "field" {
				v = p.USPerField
			}
			cells[i] = fmt.Sprintf("%.2f", v)
		}
	}
	return strings.Join(cells, "\t")
}

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// human prints a figure with thousands separators or two decimals.
func human(v float64) string {
	if v >= 1000 || v <= -1000 {
		s := fmt.Sprintf("%.0f", v)
		neg := strings.HasPrefix(s, "-")
		s = strings.TrimPrefix(s, "-")
		var b strings.Builder
		for i, c := range s {
			if i > 0 && (len(s)-i)%3 == 0 {
				b.WriteByte(',')
			}
			b.WriteRune(c)
		}
		if neg {
			return "-" + b.String()
		}
		return b.String()
	}
	if v >= 100 || v <= -100 {
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.2f", v)
}

var errNotRun = errors.New("section not run")

func boolp(b bool) *bool { return &b }
