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
)

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
	} else {
		l.Missing = missing("vault")
	}
	out = append(out, l)

	// 2. The demo's pattern.
	l = Line{ID: "demo_pattern", Name: "2 demo pattern (1 sync transit call per field)", Unit: "records/s"}
	if d := r.demo; d != nil {
		l.Value = d.RecordsPerSec
		l.Detail = fmt.Sprintf("%.0f fields/s, 2 fields/record", d.FieldsPerSec)
		l.Reference = fmt.Sprintf("Python demo ≈%d records/s (not run here)", demoPythonRecordsPerSec)
		ratio(&l, d.RecordsPerSec, demoPythonRecordsPerSec, true)
	} else {
		l.Missing = missing("demo")
	}
	out = append(out, l)

	// 3. REST produce.
	l = Line{ID: "rest_saturation", Name: "3 REST produce, transit, saturation", Unit: "fields/s",
		Reference: "Vault ceiling (1)", Target: fmt.Sprintf("≥ %.0f%% of ceiling", 100*targetOfCeiling)}
	l2 := Line{ID: "rest_latency", Name: "3 REST produce p99 at half load", Unit: "ms", Target: fmt.Sprintf("p99 ≤ %.0f ms", targetP99ms)}
	if s := r.rest; s != nil {
		l.Value = s.FieldsPerSec
		l.Detail = fmt.Sprintf("%.0f records/s, %d clients, %d records × %d fields per request", s.RecordsPerSec, s.Clients, s.RecordsPerReq, s.FieldsPerRec)
		if r.vault != nil {
			ratio(&l, s.FieldsPerSec, r.vault.FieldsPerSec, false)
			l.Met = boolp(l.Ratio >= targetOfCeiling)
		} else {
			l.Detail += "; no ceiling to compare with"
		}
		l2.Value = s.P99ms
		l2.Detail = fmt.Sprintf("p50 %.1f ms at %.0f requests/s (%.0f records/s), open loop", s.P50ms, s.HalfLoadReqSec, s.HalfLoadReqSec*float64(s.RecordsPerReq))
		if s.Late > 0 {
			l2.Detail += fmt.Sprintf(", %d late starts", s.Late)
		}
		l2.Reference = "target"
		ratio(&l2, s.P99ms, targetP99ms, false)
		l2.Met = boolp(s.P99ms <= targetP99ms)
	} else {
		l.Missing, l2.Missing = missing("rest"), missing("rest")
	}
	out = append(out, l, l2)

	// 4. Bridge.
	l = Line{ID: "bridge_vs_demo", Name: "4 bridge (1 transit + 1 FPE field)", Unit: "records/s",
		Reference: "demo pattern (2)", Target: fmt.Sprintf("≥ %.0f× demo", targetBridgeVsDemo)}
	l2 = Line{ID: "bridge_vs_vault", Name: "4 bridge transit fields", Unit: "fields/s",
		Reference: "Vault ceiling (1)", Target: fmt.Sprintf("≥ %.0f%% of ceiling", 100*targetOfCeiling)}
	if b := r.bridge; b != nil {
		l.Value = b.RecordsPerSec
		l.Detail = fmt.Sprintf("%d records, %d partitions, %d batches", b.Records, b.Partitions, b.Batches)
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
	} else {
		l.Missing, l2.Missing = missing("bridge"), missing("bridge")
	}
	out = append(out, l, l2)

	// 5. Envelope.
	l = Line{ID: "envelope_overhead", Name: "5 envelope (cached DEK) vs plain produce", Unit: "% overhead",
		Reference: "plain sarama produce", Target: fmt.Sprintf("≤ %.0f%%", targetEnvelopePct)}
	if v := r.envelope; v != nil {
		l.Value = v.OverheadPct
		l.Detail = fmt.Sprintf("%.0f vs %.0f records/s (%d × %d B); open %.0f records/s with %d unwrap calls, %d seal DEK fetches",
			v.EnvelopePerSec, v.PlainPerSec, v.Records, v.RecordBytes, v.DecryptPerSec, v.UnwrapCalls, v.SealFetches)
		ratio(&l, v.EnvelopePerSec, v.PlainPerSec, false)
		l.Met = boolp(v.OverheadPct <= targetEnvelopePct)
	} else {
		l.Missing = missing("envelope")
	}
	out = append(out, l)

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
