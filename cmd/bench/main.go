// Command bench runs kafkagate's performance measurements (`make bench`):
// it starts its own Vault dev server, a kfake broker (this executable
// re-run as a process of its own) and the built gateway, prints one table
// with each process's CPU time per unit of work and writes the same report
// as JSON. See docs/performance.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"

	"github.com/kafkagate/kafkagate/internal/bench"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if os.Getenv(bench.ChildEnv) != "" { // one side of the files section
		code := bench.RunChild(ctx)
		stop()
		os.Exit(code)
	}
	if os.Getenv(bench.BrokerEnv) != "" { // the broker process
		code := bench.RunBroker(ctx)
		stop()
		os.Exit(code)
	}
	os.Exit(run(ctx))
}

func run(ctx context.Context) int {
	var (
		quick    = flag.Bool("quick", false, "smoke run: tiny sizes and short points (figures not meaningful)")
		sections = flag.String("sections", "", "comma-separated sections to run (default all: "+strings.Join(bench.Sections, ",")+")")
		out      = flag.String("json", "bench-results.json", "write the report as JSON here (\"\" for none)")
		vaultBin = flag.String("vault", "", "vault binary (default .bin/vault or PATH)")
		gwProf   = flag.String("gateway-cpuprofile", "", "write CPU profiles of the gateway process (each REST saturation sweep, the bridge's first seconds, and one proxied round of each proxy mode) into this directory")
		gwBin    = flag.String("gateway", "", "gateway binary run for REST and the bridge (default: gateway beside this executable, else built)")
		tmp      = flag.String("tmp", "", "directory for received files (default the system temporary directory)")
		cpuprof  = flag.String("cpuprofile", "", "write a CPU profile of this process (the load generator and envelope client; Vault, the broker, the gateway and the file children are separate processes) here")
	)
	flag.Parse()
	if *cpuprof != "" {
		f, err := os.Create(*cpuprof)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			return 1
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			return 1
		}
		defer pprof.StopCPUProfile()
	}
	cfg := bench.Config{Quick: *quick, VaultBinary: *vaultBin, GatewayBinary: *gwBin, GatewayProfileDir: *gwProf, TmpDir: *tmp}
	if *sections != "" {
		cfg.Sections = strings.Split(*sections, ",")
	}
	rep, err := bench.Run(ctx, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	if err := rep.WriteTable(os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	if *out != "" {
		f, err := os.Create(*out)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			return 1
		}
		if err := rep.WriteJSON(f); err != nil {
			f.Close()
			fmt.Fprintln(os.Stderr, "bench:", err)
			return 1
		}
		if err := f.Close(); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			return 1
		}
		fmt.Fprintln(os.Stderr, "bench: report written to", *out)
	}
	return 0
}
