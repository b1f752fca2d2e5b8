package bench

import (
	"fmt"
	"strings"
)

// Reference figures and the targets each benchmark line is checked
// against (a ratio, a latency in ms, a percentage or a size in MiB).
const (
	demoPythonRecordsPerSec = 380 // the real Python demo on this machine, records/s
	targetBridgeVsDemo      = 50.0
	targetOfCeiling         = 0.50
	targetP99ms             = 50.0
	targetEnvelopePct       = 20.0
	targetFilesOfPlain      = 0.60
	targetFilesRSSMiB       = 64.0
	// targetRSSSpread is how far apart the peak RSS of the smallest and
	// the largest file may be to count as "the same": memory must not
	// grow with the file.
	targetRSSSpread = 0.10
	targetFPEOfRaw  = 0.80
	// Per-process CPU and single-record requests.
	targetGatewayOfVaultCPU       = 0.5  // gateway µs per transit field ÷ Vault's
	targetBridgeGatewayOfVaultCPU = 1.0  // gateway µs per record ÷ Vault's
	targetSingleOfBatched         = 0.50 // 1-record requests' throughput ÷ 10-record requests'
	targetItemsPerCall            = 50.0 // mean Vault batch size with 1-record requests
	targetEnvelopeClientCPU       = 1.25 // client CPU per record, sealed ÷ plain, 1 KiB
)

// withCPU attaches per-process CPU figures to l, per field or per record.
func withCPU(l *Line, cs []ProcCPU, perField bool) {
	l.CPU = cs
	l.CPUPer = "record"
	if perField {
		l.CPUPer = "field"
	}
}

// cpuRatio makes l the gateway's CPU per unit divided by the ref
// process's, with the target verdict ≤ the figure in l.Target.
func cpuRatio(l *Line, cs []ProcCPU, ref string, perField bool) {
	g, v := cpuOf(cs, procGateway), cpuOf(cs, ref)
	if g == nil || v == nil {
		l.Missing = "no CPU figures"
		return
	}
	gu, vu := g.USPerRecord, v.USPerRecord
	if perField {
		gu, vu = g.USPerField, v.USPerField
	}
	if vu <= 0 {
		l.Missing = "no " + ref + " CPU time measured"
		return
	}
	l.Value = gu / vu
	l.Ratio, l.RatioText = l.Value, fmt.Sprintf("%.2f×", l.Value)
	l.Detail = fmt.Sprintf("gateway %.2f µs, %s %.2f µs per %s", gu, ref, vu, map[bool]string{true: "field", false: "record"}[perField])
	target := targetGatewayOfVaultCPU
	if !perField {
		target = targetBridgeGatewayOfVaultCPU
	}
	l.Met = boolp(l.Value <= target)
}

// lines computes the table from the results; a section that did not run
// or failed leaves its lines with Missing set.
func (r *results) lines(cfg Config) []Line {
	missing := func(section string) string {
		if err := r.errs[section]; err != nil {
			return "failed: " + err.Error()
		}
		if !cfg.has(section) {
			return "not run"
		}
		return errNotRun.Error()
	}
	ratio := func(l *Line, v, ref float64, asX bool) {
		if ref <= 0 {
			return
		}
		l.Ratio = v / ref
		if asX {
			l.RatioText = fmt.Sprintf("%.1f×", l.Ratio)
		} else {
			l.RatioText = fmt.Sprintf("%.0f%%", 100*l.Ratio)
		}
	}
	var out []Line

	// 1. Vault's ceiling.
	l := Line{ID: "vault_ceiling", Name: "1 Vault ceiling (transit/encrypt batch_input)", Unit: "fields/s"}
	if v := r.vault; v != nil {
		l.Value = v.FieldsPerSec
		l.Detail = fmt.Sprintf("best of %d points: batch %d, %d in flight", len(v.Points), v.Batch, v.InFlight)
		l.Reference = "the reference of lines 3 and 4"
		withCPU(&l, v.CPU, true)
	} else {
		l.Missing = missing("vault")
	}
	out = append(out, l)

	// 2. The demo's pattern.
	l = Line{ID: "demo_pattern", Name: "2 demo pattern (1 sync transit call per field)", Unit: "records/s"}
	if d := r.demo; d != nil {
		l.Value = d.RecordsPerSec
		l.Detail = fmt.Sprintf("%.0f fields/s, 2 fields/record", d.FieldsPerSec)
		withCPU(&l, d.CPU, true)
		l.Reference = fmt.Sprintf("Python demo ≈%d records/s (not run here)", demoPythonRecordsPerSec)
		ratio(&l, d.RecordsPerSec, demoPythonRecordsPerSec, true)
	} else {
		l.Missing = missing("demo")
	}
	out = append(out, l)

	// 3. REST produce: 10 records per request, then 1.
	l = Line{ID: "rest_saturation", Name: "3 REST produce, transit, 10 records/request, saturation", Unit: "fields/s",
		Reference: "Vault ceiling (1)", Target: fmt.Sprintf("≥ %.0f%% of ceiling", 100*targetOfCeiling)}
	l2 := Line{ID: "rest_latency", Name: "3 REST produce p99 at half load, 10 records/request", Unit: "ms", Target: fmt.Sprintf("p99 ≤ %.0f ms", targetP99ms)}
	l3 := Line{ID: "rest_gateway_cpu", Name: "3 REST 10/request: gateway CPU per field ÷ Vault's", Unit: "×",
		Reference: "Vault µs per field", Target: fmt.Sprintf("≤ %.2f×", targetGatewayOfVaultCPU)}
	if s := r.rest; s != nil && s.Batched != nil {
		b := s.Batched
		l.Value = b.FieldsPerSec
		l.Detail = fmt.Sprintf("%.0f records/s, %d clients, %d records × %d fields per request; %.1f Vault calls per 1,000 records (%.0f items each)",
			b.RecordsPerSec, b.Clients, b.RecordsPerReq, b.FieldsPerRec, b.VaultCallsPer1k, b.ItemsPerCall)
		withCPU(&l, b.CPU, true)
		if r.vault != nil {
			ratio(&l, b.FieldsPerSec, r.vault.FieldsPerSec, false)
			l.Met = boolp(l.Ratio >= targetOfCeiling)
		} else {
			l.Detail += "; no ceiling to compare with"
		}
		l2.Value = b.P99ms
		l2.Detail = fmt.Sprintf("p50 %.1f ms at %.0f requests/s (%.0f records/s), open loop", b.P50ms, b.LoadReqSec, b.LoadReqSec*float64(b.RecordsPerReq))
		if b.Late > 0 {
			l2.Detail += fmt.Sprintf(", %d late starts", b.Late)
		}
		l2.Reference = "target"
		ratio(&l2, b.P99ms, targetP99ms, false)
		l2.Met = boolp(b.P99ms <= targetP99ms)
		cpuRatio(&l3, b.CPU, procVault, true)
	} else {
		l.Missing, l2.Missing, l3.Missing = missing("rest"), missing("rest"), missing("rest")
	}
	out = append(out, l, l2, l3)

	l = Line{ID: "rest_single_saturation", Name: "3 REST produce, transit, 1 record/request, saturation", Unit: "fields/s",
		Reference: "10 records/request (3)", Target: fmt.Sprintf("≥ %.0f%% of 10/request", 100*targetSingleOfBatched)}
	l2 = Line{ID: "rest_single_vault_calls", Name: "3 REST 1/request: Vault batch size", Unit: "items/call",
		Reference: "target", Target: fmt.Sprintf("≥ %.0f items per call", targetItemsPerCall)}
	l3 = Line{ID: "rest_single_latency", Name: "3 REST 1/request p99 at a fixed rate", Unit: "ms",
		Reference: "target", Target: fmt.Sprintf("p99 ≤ %.0f ms at 1,000 requests/s", targetP99ms)}
	l4 := Line{ID: "rest_single_gateway_cpu", Name: "3 REST 1/request: gateway CPU per field ÷ Vault's", Unit: "×",
		Reference: "Vault µs per field", Target: fmt.Sprintf("≤ %.2f×", targetGatewayOfVaultCPU)}
	if s := r.rest; s != nil && s.Single != nil {
		g := s.Single
		l.Value = g.FieldsPerSec
		l.Detail = fmt.Sprintf("%.0f records/s, %d clients", g.RecordsPerSec, g.Clients)
		withCPU(&l, g.CPU, true)
		if s.Batched != nil {
			ratio(&l, g.FieldsPerSec, s.Batched.FieldsPerSec, false)
			l.Met = boolp(l.Ratio >= targetSingleOfBatched)
		}
		l2.Value = g.ItemsPerCall
		l2.Detail = fmt.Sprintf("%.1f Vault calls per 1,000 records", g.VaultCallsPer1k)
		ratio(&l2, g.ItemsPerCall, targetItemsPerCall, false)
		l2.Met = boolp(g.ItemsPerCall >= targetItemsPerCall)
		l3.Value = g.P99ms
		l3.Detail = fmt.Sprintf("p50 %.1f ms at %.0f requests/s, open loop", g.P50ms, g.LoadReqSec)
		if g.Late > 0 {
			l3.Detail += fmt.Sprintf(", %d late starts", g.Late)
		}
		ratio(&l3, g.P99ms, targetP99ms, false)
		l3.Met = boolp(g.P99ms <= targetP99ms)
		cpuRatio(&l4, g.CPU, procVault, true)
	} else {
		m := missing("rest")
		l.Missing, l2.Missing, l3.Missing, l4.Missing = m, m, m, m
	}
	out = append(out, l, l2, l3, l4)

	// 4. Bridge.
	l = Line{ID: "bridge_vs_demo", Name: "4 bridge (1 transit + 1 FPE field)", Unit: "records/s",
		Reference: "demo pattern (2)", Target: fmt.Sprintf("≥ %.0f× demo", targetBridgeVsDemo)}
	l2 = Line{ID: "bridge_vs_vault", Name: "4 bridge transit fields", Unit: "fields/s",
		Reference: "Vault ceiling (1)", Target: fmt.Sprintf("≥ %.0f%% of ceiling", 100*targetOfCeiling)}
	l3 = Line{ID: "bridge_gateway_cpu", Name: "4 bridge: gateway CPU per record ÷ Vault's", Unit: "×",
		Reference: "Vault µs per record", Target: fmt.Sprintf("≤ %.2f×", targetBridgeGatewayOfVaultCPU)}
	if b := r.bridge; b != nil {
		l.Value = b.RecordsPerSec
		l.Detail = fmt.Sprintf("%d records, %d partitions, %.1f Vault calls per 1,000 records", b.Records, b.Partitions, b.VaultCallsPer1k)
		withCPU(&l, b.CPU, false)
		if r.demo != nil {
			ratio(&l, b.RecordsPerSec, r.demo.RecordsPerSec, true)
			l.Met = boolp(l.Ratio >= targetBridgeVsDemo)
		}
		l2.Value = b.TransitFieldsPerSec
		l2.Detail = fmt.Sprintf("only Vault-bound fields counted (%.0f fields/s with FPE)", 2*b.RecordsPerSec)
		if r.vault != nil {
			ratio(&l2, b.TransitFieldsPerSec, r.vault.FieldsPerSec, false)
			l2.Met = boolp(l2.Ratio >= targetOfCeiling)
		}
		cpuRatio(&l3, b.CPU, procVault, false)
		if l3.Missing == "" {
			l3.Met = boolp(l3.Value <= targetBridgeGatewayOfVaultCPU)
		}
	} else {
		l.Missing, l2.Missing, l3.Missing = missing("bridge"), missing("bridge"), missing("bridge")
	}
	out = append(out, l, l2, l3)

	// 5. Envelope, per record size.
	if len(r.envelope) == 0 {
		m := missing("envelope")
		out = append(out, Line{ID: "envelope_overhead", Name: "5 envelope (cached DEK) vs plain produce", Missing: m, Reference: "plain produce", Target: fmt.Sprintf("≤ %.0f%% at 1 KiB", targetEnvelopePct)},
			Line{ID: "envelope_client_cpu", Name: "5 envelope client CPU per record, sealed ÷ plain", Missing: m, Reference: "plain produce", Target: fmt.Sprintf("≤ %.2f× at 1 KiB", targetEnvelopeClientCPU)})
	}
	for _, v := range r.envelope {
		size := sizeName(int64(v.RecordBytes))
		if v.RecordBytes < 1<<10 {
			size = fmt.Sprintf("%dB", v.RecordBytes)
		}
		at1K := v.RecordBytes == 1<<10
		l = Line{ID: "envelope_overhead/" + size, Name: "5 envelope (cached DEK) vs plain produce, " + size, Unit: "% overhead",
			Reference: "plain produce, broker in its own process"}
		l.Value = v.OverheadPct
		l.Detail = fmt.Sprintf("%.0f vs %.0f records/s (%d × %d B); open %.0f records/s with %d unwrap calls, %d seal DEK fetches",
			v.EnvelopePerSec, v.PlainPerSec, v.Records, v.RecordBytes, v.DecryptPerSec, v.UnwrapCalls, v.SealFetches)
		withCPU(&l, v.SealedCPU, false)
		ratio(&l, v.EnvelopePerSec, v.PlainPerSec, false)
		if at1K {
			l.Target = fmt.Sprintf("≤ %.0f%%", targetEnvelopePct)
			l.Met = boolp(v.OverheadPct <= targetEnvelopePct)
		}
		l2 = Line{ID: "envelope_client_cpu/" + size, Name: "5 envelope client CPU per record, sealed ÷ plain, " + size, Unit: "×",
			Reference: "plain produce"}
		pc, sc := cpuOf(v.PlainCPU, procClient), cpuOf(v.SealedCPU, procClient)
		pb, sb := cpuOf(v.PlainCPU, procBroker), cpuOf(v.SealedCPU, procBroker)
		if pc != nil && sc != nil && pc.USPerRecord > 0 {
			l2.Value = sc.USPerRecord / pc.USPerRecord
			l2.Ratio, l2.RatioText = l2.Value, fmt.Sprintf("%.2f×", l2.Value)
			l2.Detail = fmt.Sprintf("client %.1f vs %.1f µs/record", sc.USPerRecord, pc.USPerRecord)
			if pb != nil && sb != nil {
				dc, db := sc.USPerRecord-pc.USPerRecord, sb.USPerRecord-pb.USPerRecord
				l2.Detail += fmt.Sprintf("; broker %.1f vs %.1f µs/record; wire %.0f vs %.0f B/record (%.2f×); extra CPU: sealing (client) %+.1f µs, bytes (broker) %+.1f µs",
					sb.USPerRecord, pb.USPerRecord, v.SealedWireBytes, v.PlainWireBytes, v.SealedWireBytes/v.PlainWireBytes, dc, db)
				if dc+db > 0 {
					l2.Detail += fmt.Sprintf(" (%.0f%% sealing, %.0f%% bytes)", 100*max(dc, 0)/(max(dc, 0)+max(db, 0)), 100*max(db, 0)/(max(dc, 0)+max(db, 0)))
				}
			}
			if at1K {
				l2.Target = fmt.Sprintf("≤ %.2f×", targetEnvelopeClientCPU)
				l2.Met = boolp(l2.Value <= targetEnvelopeClientCPU)
			}
		} else {
			l2.Missing = "no CPU figures"
		}
		out = append(out, l, l2)
	}

	// 6. Files.
	if len(r.files) == 0 {
		m := missing("files")
		out = append(out, Line{ID: "files_throughput", Name: "6 files send+receive", Missing: m, Reference: "plain produce+consume", Target: fmt.Sprintf("≥ %.0f%% of plain", 100*targetFilesOfPlain)},
			Line{ID: "files_rss", Name: "6 files peak RSS", Missing: m, Target: fmt.Sprintf("≤ %.0f MiB, same for every size", targetFilesRSSMiB)})
	}
	var rssLo, rssHi float64
	for i, f := range r.files {
		size := sizeName(f.Size)
		l = Line{ID: "files_throughput/" + size, Name: "6 files send+receive " + size, Unit: "MB/s", Value: f.EncMBps,
			Detail:    fmt.Sprintf("send %.1fs + receive %.1fs vs produce %.1fs + consume %.1fs = %.0f MB/s", f.SendSec, f.ReceiveSec, f.ProduceSec, f.ConsumeSec, f.PlainMBps),
			Reference: "plain produce+consume", Target: fmt.Sprintf("≥ %.0f%% of plain", 100*targetFilesOfPlain)}
		ratio(&l, f.EncMBps, f.PlainMBps, false)
		l.Met = boolp(l.Ratio >= targetFilesOfPlain)
		peak := max(f.SendRSS, f.ReceiveRSS)
		if i == 0 {
			rssLo, rssHi = peak, peak
		}
		rssLo, rssHi = min(rssLo, peak), max(rssHi, peak)
		l2 = Line{ID: "files_rss/" + size, Name: "6 files peak RSS " + size, Unit: "MiB", Value: peak,
			Detail:    fmt.Sprintf("sender %.0f, receiver %.0f; plain producer %.0f, consumer %.0f MiB", f.SendRSS, f.ReceiveRSS, f.ProduceRSS, f.ConsumeRSS),
			Reference: fmt.Sprintf("%.0f MiB", targetFilesRSSMiB),
			Target:    fmt.Sprintf("≤ %.0f MiB, same for every size (±%.0f%%)", targetFilesRSSMiB, 100*targetRSSSpread)}
		ratio(&l2, peak, targetFilesRSSMiB, false)
		out = append(out, l, l2)
	}
	if len(r.files) > 0 {
		flat := rssHi <= rssLo*(1+targetRSSSpread)
		for i := range out {
			if baseID(out[i].ID) == "files_rss" {
				out[i].Met = boolp(out[i].Value <= targetFilesRSSMiB && flat)
				if !flat {
					out[i].Detail += fmt.Sprintf("; grows with size: %.0f → %.0f MiB", rssLo, rssHi)
				}
			}
		}
	}

	// 7. FPE.
	l = Line{ID: "fpe_wrapper", Name: "7 FPE wrapper (digits, 16)", Unit: "ops/s",
		Reference: "raw capitalone/fpe FF1", Target: fmt.Sprintf("≥ %.0f%% of raw", 100*targetFPEOfRaw)}
	if f := r.fpe; f != nil {
		l.Value = f.WrapperPerSec
		l.Detail = fmt.Sprintf("raw FF1 %.0f ops/s, 1 goroutine each", f.RawPerSec)
		ratio(&l, f.WrapperPerSec, f.RawPerSec, false)
		l.Met = boolp(l.Ratio >= targetFPEOfRaw)
	} else {
		l.Missing = missing("fpe")
	}
	out = append(out, l)

	// 8. The Kafka proxy.
	out = append(out, r.proxyLines(missing("proxy"))...)
	return out
}

// baseID is a line id without its "/size" suffix.
func baseID(id string) string {
	base, _, _ := strings.Cut(id, "/")
	return base
}

func sizeName(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%dGiB", n>>30)
	case n >= 1<<20:
		return fmt.Sprintf("%dMiB", n>>20)
	default:
		return fmt.Sprintf("%dKiB", n>>10)
	}
}

// CapacityRow is what one workload costs in cores: each process's cores
// per 100,000 units (fields or records, CPUPer) a second, from the CPU µs
// per unit of its line, and the gateway's cores per Vault core.
type CapacityRow struct {
	ID     string             `json:"id"`
	Name   string             `json:"name"`
	CPUPer string             `json:"cpu_per"`
	Cores  map[string]float64 `json:"cores_per_100k_per_sec"`
	// GatewayPerVaultCore is the gateway's CPU per unit ÷ Vault's (0:
	// not both took part).
	GatewayPerVaultCore float64 `json:"gateway_cores_per_vault_core,omitempty"`
}

// capacity is a row for every line with CPU figures.
func capacity(lines []Line) []CapacityRow {
	var out []CapacityRow
	for _, l := range lines {
		if l.Missing != "" || len(l.CPU) == 0 {
			continue
		}
		row := CapacityRow{ID: l.ID, Name: l.Name, CPUPer: l.CPUPer, Cores: map[string]float64{}}
		for _, p := range l.CPU {
			us := p.USPerRecord
			if l.CPUPer == "field" {
				us = p.USPerField
			}
			row.Cores[p.Process] = us * 100_000 / 1e6 // µs per unit × units per second
		}
		if g, v := row.Cores[procGateway], row.Cores[procVault]; g > 0 && v > 0 {
			row.GatewayPerVaultCore = g / v
		}
		out = append(out, row)
	}
	return out
}
